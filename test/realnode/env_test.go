package realnode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/cluster"
)

const (
	namespace   = "bpfleet-system"
	agentDS     = "bpfleet-agent"
	operatorDep = "bpfleet-operator"
	// imageRepo is where the operator and agent images go in the
	// cluster's registry.
	imageRepo = "bpfleet"
)

// env is the installed product on the real node.
type env struct {
	c      *cluster.Cluster
	client client.Client
	tmp    string
	// overlay is the kustomization the suite applies: config/default with
	// the image references (and, for this plain-HTTP registry, its flags).
	overlay string
	// agentImages are two builds of the agent (different versions, so
	// different digests), for the rolling update; operatorImage the one
	// operator build; all by digest.
	agentImages   [2]string
	operatorImage string
	bpfleetBin    string
	kubectlBPF    string
	key           string // cosign private key; its .pub beside it

	// figures the tests report
	killedHarnessUp, bringUp, installReady time.Duration
}

func setUp(ctx context.Context, stateDir string, killedUp time.Duration) (*env, error) {
	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{RepoDir: repoDir, StateDir: stateDir, Out: os.Stderr})
	if err != nil {
		return nil, err
	}
	e := &env{c: c, killedHarnessUp: killedUp, bringUp: time.Since(began)}
	if e.tmp, err = os.MkdirTemp("", "bpfleet-realnode-"); err != nil {
		return e, err
	}
	if e.client, err = client.New(c.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return e, err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"build bpfleet and kubectl-bpf", e.buildCLIs},
		{"build and push the operator and agent images", e.pushImages},
		{"write the overlay", e.writeOverlay},
		{"kubectl apply -k and wait for Ready", e.install},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return e, fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "realnode: %s: %s\n", s.name, time.Since(t).Round(10*time.Millisecond))
	}
	return e, nil
}

func (e *env) buildCLIs(ctx context.Context) error {
	e.bpfleetBin = filepath.Join(e.tmp, "bpfleet")
	e.kubectlBPF = filepath.Join(e.tmp, "kubectl-bpf")
	for out, pkg := range map[string]string{e.bpfleetBin: "./cmd/bpfleet", e.kubectlBPF: "./cmd/kubectl-bpf"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = repoDir
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", pkg, err, b)
		}
	}
	return nil
}

// pushImages runs `make images`' builder for linux/amd64 and pushes to the
// cluster's registry, as a user pushes to theirs. The second agent image
// differs only in its version label: a new digest for a rolling update.
func (e *env) pushImages(ctx context.Context) error {
	prefix := e.c.RegistryHost + "/" + imageRepo
	for i, args := range [][]string{
		{"-version", "realnode-1"},
		{"-version", "realnode-2", "-images", "bpfleet-agent"},
	} {
		cmd := exec.CommandContext(ctx, "go", append([]string{"run", "./config/images", "-o", filepath.Join(e.tmp, "images"), "-arch", "amd64", "-push", prefix}, args...)...)
		cmd.Dir = repoDir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("build images: %w: %s", err, stderr.String())
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) != 3 || f[2] != "pushed" {
				continue
			}
			switch {
			case strings.HasPrefix(f[0], "bpfleet-agent:"):
				e.agentImages[i] = f[1]
			case strings.HasPrefix(f[0], "bpfleet-operator:"):
				e.operatorImage = f[1]
			}
		}
	}
	if e.agentImages[0] == "" || e.agentImages[1] == "" || e.operatorImage == "" {
		return fmt.Errorf("images tool did not report every push: agent %v, operator %q", e.agentImages, e.operatorImage)
	}
	return nil
}

// writeOverlay writes the kustomization README "Deploying on a cluster"
// shows: config/default with the pushed images by digest, and the flags a
// plain-HTTP registry off loopback needs, and a short --cleanup-timeout
// (uninstall_test.go waits it out).
func (e *env) writeOverlay(context.Context) error {
	e.overlay = filepath.Join(e.tmp, "overlay")
	if err := os.MkdirAll(e.overlay, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(e.overlay, filepath.Join(repoDir, "config", "default"))
	if err != nil {
		return err
	}
	name, digest := splitDigest(e.operatorImage)
	agentName, agentDigest := splitDigest(e.agentImages[0])
	k := fmt.Sprintf(`resources:
  - %s
images:
  - {name: bpfleet-operator, newName: %s, digest: %s}
  - {name: bpfleet-agent, newName: %s, digest: %s}
patches:
  - target: {kind: Deployment, name: bpfleet-operator}
    patch: |
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --registry-plain-http}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --registry-insecure}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --cleanup-timeout=%s}
  - target: {kind: DaemonSet, name: bpfleet-agent}
    patch: |
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --registry-plain-http}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --registry-insecure}
`, rel, name, digest, agentName, agentDigest, cleanupTimeout)
	return os.WriteFile(filepath.Join(e.overlay, "kustomization.yaml"), []byte(k), 0o644)
}

func splitDigest(ref string) (name, digest string) {
	name, digest, _ = strings.Cut(ref, "@")
	return name, digest
}

func (e *env) install(ctx context.Context) error {
	t := time.Now()
	if out, err := e.c.Kubectl(ctx, "apply", "-k", e.overlay); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if err := e.waitInstalled(ctx, e.agentImages[0], 3*time.Minute); err != nil {
		return err
	}
	e.installReady = time.Since(t)
	return nil
}

// waitInstalled waits until the operator Deployment has every replica
// available and the agent DaemonSet every pod ready, running agentImage.
func (e *env) waitInstalled(ctx context.Context, agentImage string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := e.installed(ctx, agentImage)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not installed after %s: %w\n%s", timeout, err, e.describePods(ctx))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *env) installed(ctx context.Context, agentImage string) error {
	var dep appsv1.Deployment
	if err := e.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: operatorDep}, &dep); err != nil {
		return err
	}
	if dep.Status.AvailableReplicas != *dep.Spec.Replicas || dep.Status.UpdatedReplicas != *dep.Spec.Replicas {
		return fmt.Errorf("operator: %d/%d available", dep.Status.AvailableReplicas, *dep.Spec.Replicas)
	}
	var ds appsv1.DaemonSet
	if err := e.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: agentDS}, &ds); err != nil {
		return err
	}
	s := ds.Status
	if s.ObservedGeneration != ds.Generation || s.DesiredNumberScheduled != 1 || s.NumberReady != 1 || s.UpdatedNumberScheduled != 1 {
		return fmt.Errorf("agent DaemonSet: %d/%d ready, %d updated", s.NumberReady, s.DesiredNumberScheduled, s.UpdatedNumberScheduled)
	}
	pod, err := e.agentPod(ctx)
	if err != nil {
		return err
	}
	if pod.Spec.Containers[0].Image != agentImage {
		return fmt.Errorf("agent pod %s runs %s, want %s", pod.Name, pod.Spec.Containers[0].Image, agentImage)
	}
	return nil
}

// agentPod is the running, ready agent pod.
func (e *env) agentPod(ctx context.Context) (*corev1.Pod, error) {
	var pods corev1.PodList
	if err := e.client.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/name": agentDS}); err != nil {
		return nil, err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(p) {
			return p, nil
		}
	}
	return nil, errors.New("no ready agent pod")
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (e *env) describePods(ctx context.Context) string {
	out, _ := e.c.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	ev, _ := e.c.Kubectl(ctx, "get", "events", "-A", "--sort-by=.lastTimestamp")
	lines := strings.Split(ev, "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return out + "\n" + strings.Join(lines, "\n")
}

// tearDown deletes every BpfProgram and waits until the node reports none,
// uninstalls with kubectl delete -k, and stops the cluster; it fails when
// the host keeps anything of the run.
func (e *env) tearDown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	if e.client != nil {
		if err := e.client.DeleteAllOf(ctx, &v1.BpfProgram{}); err != nil {
			errs = append(errs, fmt.Errorf("delete programs: %w", err))
		}
		deadline := time.Now().Add(time.Minute)
		for {
			var states v1.BpfNodeStateList
			err := e.client.List(ctx, &states)
			n := 0
			for _, s := range states.Items {
				n += len(s.Status.Programs)
			}
			if err == nil && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("node still reports %d programs a minute after deletion (%v)", n, err))
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if e.overlay != "" {
			if out, err := e.c.Kubectl(ctx, "delete", "-k", e.overlay, "--wait=true", "--timeout=90s"); err != nil {
				errs = append(errs, fmt.Errorf("uninstall: %w: %s", err, out))
			}
		}
	}
	errs = append(errs, e.c.Stop(ctx))
	if left := e.c.Leftovers(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left on the host after teardown: %s", strings.Join(left, "; ")))
	}
	if entries, err := os.ReadDir("/sys/fs/bpf/bpfleet"); err == nil && len(entries) > 0 {
		errs = append(errs, fmt.Errorf("pins left under /sys/fs/bpf/bpfleet: %d entries", len(entries)))
	}
	errs = append(errs, os.RemoveAll(e.tmp))
	return errors.Join(errs...)
}
