package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/livetraffic/death"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestHelmInstall installs bpfleet on the real node with the Helm chart
// instead of kustomize, reaching the plain-HTTP registry through a
// per-host registries config (no global flag), runs the packet-of-death
// filter under traffic, uninstalls the release, and puts the suite's
// kustomize install back.
func TestHelmInstall(t *testing.T) {
	e := requireSuite(t)
	helm := privileged.RequireCommand(t, "helm")
	ctx := context.Background()
	e.kubectl(t, "delete", "-k", e.overlay, "--wait=true", "--timeout=2m")
	waitNamespaceGone(t, e)

	values := fmt.Sprintf(`operator: {image: %q}
agent: {image: %q}
registry:
  registries:
    - {host: %q, plainHTTP: true}
`, e.operatorImage, e.agentImages[0], e.c.RegistryNodeHost)
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	runHelm := func(args ...string) {
		t.Helper()
		cmd := exec.Command(helm, append(args, "--kubeconfig", e.c.Kubeconfig)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	runHelm("install", "bpfleet", filepath.Join(repoDir, "config", "helm", "bpfleet"), "--namespace", "default", "-f", valuesFile)
	if err := e.waitInstalled(ctx, e.agentImages[0], 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	args := e.kubectl(t, "-n", namespace, "get", "daemonset", agentDS, "-o", "jsonpath={.spec.template.spec.containers[0].args}")
	if strings.Contains(args, "--registry-plain-http") || !strings.Contains(args, "--registries-config=") {
		t.Errorf("agent args %s: want the registries config, not the global plain-HTTP flag", args)
	}

	e.forgetTrust(t)
	f, took := e.newFilter(t, "realnode-helm")
	t.Logf("installed with helm; BpfProgram apply → Attached: %s", took.Round(time.Millisecond))
	c := death.During(t, f.path(t), func(func()) { time.Sleep(4 * time.Second) })
	t.Logf("traffic: %s", c)
	c.Check(t)

	e.kubectl(t, "delete", "bpfprograms", "--all", "--wait=true", "--timeout=2m")
	runHelm("uninstall", "bpfleet", "--namespace", "default")
	e.kubectl(t, "delete", "-f", filepath.Join(repoDir, "config", "helm", "bpfleet", "crds"), "--wait=true", "--timeout=2m")
	waitNamespaceGone(t, e)
	if entries, err := os.ReadDir(agentBPFFS); err == nil && len(entries) > 0 {
		t.Errorf("%d pin directories left after the program was deleted and the release uninstalled", len(entries))
	}

	e.forgetTrust(t)
	if err := e.install(ctx); err != nil {
		t.Fatalf("install again with kustomize: %v", err)
	}
}

func waitNamespaceGone(t *testing.T, e *env) {
	t.Helper()
	envtest.Eventually(t, 3*time.Minute, func() error {
		err := e.client.Get(context.Background(), client.ObjectKey{Name: namespace}, &corev1.Namespace{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("namespace %s still there (%v)", namespace, err)
	})
}
