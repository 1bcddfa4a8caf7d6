package realnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/bpf/exectrace"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// eventLine is the agent's JSON line of one event (schema v1).
type eventLine struct {
	Schema     string            `json:"schema"`
	Node       string            `json:"node"`
	BpfProgram string            `json:"bpfProgram"`
	Output     string            `json:"output"`
	Host       bool              `json:"host"`
	Namespace  string            `json:"namespace"`
	Pod        string            `json:"pod"`
	PodUID     string            `json:"podUID"`
	Container  string            `json:"container"`
	Labels     map[string]string `json:"labels"`
	Record     map[string]any    `json:"record"`
}

// TestEvents: exec-trace with spec.events on, and a pod to exec in.
func TestEvents(t *testing.T) {
	e := requireSuite(t)
	ref := e.pushBundle(t, filepath.Join(repoDir, "bpf", "exectrace"), exectrace.BundleName, "0.1.0")
	const name = "realnode-exec-events"
	e.deleteProgram(t, name)
	e.apply(t, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BpfProgram
metadata: {name: %s}
spec:
  bundle: {image: %s}
  programs:
    - {name: %s, tracepoint: {group: %s, name: %s}}
  events: {enabled: true}
`, name, ref, exectrace.ProgramName, exectrace.TracepointGroup, exectrace.TracepointName))
	e.waitAttached(t, name, 1, applyTimeout)
	pod := e.runPod(t, "realnode-exec", "sleeper", map[string]string{"app": "exec-demo"}, "/bin/sleep", "3600")
	time.Sleep(2 * time.Second) // the agent's reader starts within a second of Attached
	t.Run("tagged with the pod in the agent's log", func(t *testing.T) { e.eventsInLog(t, name, pod) })
	t.Run("kubectl bpf events", func(t *testing.T) { e.kubectlBPFEvents(t, name, pod) })
}

// eventsInLog: a command run in a pod appears in the agent pod's log
// (kubectl logs) as a JSON line with the pod's namespace, name, container
// and labels; a command of the host is tagged as the host's.
func (e *env) eventsInLog(t *testing.T, name string, pod *corev1.Pod) {
	ctx := context.Background()
	began := time.Now()
	e.kubectl(t, "exec", "-n", pod.Namespace, pod.Name, "--", "/bin/sh", "-c", "/bin/true realnode-marker")
	if out, err := exec.Command("/bin/true", "host-marker").CombinedOutput(); err != nil {
		t.Fatalf("run on the host: %v: %s", err, out)
	}
	var inPod, onHost *eventLine
	envtest.Eventually(t, 20*time.Second, func() error {
		inPod, onHost = nil, nil
		agent, err := e.agentPod(ctx)
		if err != nil {
			return err
		}
		logs := e.kubectl(t, "logs", "-n", namespace, agent.Name, "-c", "agent", "--since=2m")
		sc := bufio.NewScanner(strings.NewReader(logs))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l eventLine
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Schema != "bpfleet.io/events/v1" || l.BpfProgram != name {
				continue
			}
			file, _ := l.Record["filename"].(string)
			switch {
			case file == "/bin/true" && !l.Host && l.Pod == pod.Name:
				inPod = &l
			case file == "/bin/true" && l.Host:
				onHost = &l
			}
		}
		if inPod == nil || onHost == nil {
			return fmt.Errorf("no event line yet for the pod's exec (%v) or the host's (%v)", inPod != nil, onHost != nil)
		}
		return nil
	})
	t.Logf("pod exec seen in kubectl logs %s after kubectl exec returned", time.Since(began).Round(10*time.Millisecond))
	if inPod.Namespace != pod.Namespace || inPod.Container != "sleeper" || inPod.PodUID != string(pod.UID) ||
		inPod.Labels["app"] != "exec-demo" || inPod.Node != e.c.NodeName || inPod.Output != exectrace.EventsMap {
		t.Errorf("pod event %+v, want namespace %s, container sleeper, uid %s, label app=exec-demo, node %s", *inPod, pod.Namespace, pod.UID, e.c.NodeName)
	}
	if onHost.Pod != "" || onHost.Namespace != "" {
		t.Errorf("host event carries pod identity: %+v", *onHost)
	}
}

// runPod runs a busybox pod with one container running command, labelled
// labels, and waits until it runs.
func (e *env) runPod(t testing.TB, name, container string, labels map[string]string, command ...string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{{Name: container, Image: e.c.WorkloadImage, Command: command}},
		},
	}
	if err := e.client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), pod) })
	envtest.Eventually(t, 2*time.Minute, func() error {
		if err := e.client.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		if pod.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s", pod.Name, pod.Status.Phase)
		}
		return nil
	})
	return pod
}

// kubectlBPFEvents: a user who may get the BpfProgram streams its events
// with kubectl bpf events (port-forward with their token, merged from the
// agents); the agent itself refuses a token that may not get it; the
// plugin says clearly when a node has no agent or a program no events.
func (e *env) kubectlBPFEvents(t *testing.T, name string, pod *corev1.Pod) {
	ctx := context.Background()
	viewer := e.serviceAccountKubeconfig(t, "realnode-viewer", true)
	outsider := e.serviceAccountKubeconfig(t, "realnode-outsider", false)

	cmd := exec.CommandContext(ctx, e.kubectlBPF, "events", name, "--kubeconfig", viewer.kubeconfig, "-n", pod.Namespace, "-o", "json")
	var mu sync.Mutex
	var lines []string
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	time.Sleep(2 * time.Second) // port-forward and stream open
	var began time.Time
	envtest.Eventually(t, 20*time.Second, func() error {
		began = time.Now()
		e.kubectl(t, "exec", "-n", pod.Namespace, pod.Name, "--", "/bin/sh", "-c", "/bin/true streamed")
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, l := range lines {
				var ev eventLine
				if json.Unmarshal([]byte(l), &ev) == nil && ev.Pod == pod.Name && ev.Record["filename"] == "/bin/true" {
					mu.Unlock()
					return nil
				}
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Errorf("no line for the pod's exec; stream: %d lines, stderr %s", len(lines), stderr.String())
	})
	t.Logf("pod exec printed by kubectl bpf events %s after kubectl exec began", time.Since(began).Round(10*time.Millisecond))
	mu.Lock()
	for _, l := range lines {
		var ev eventLine
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Schema != "" && (ev.Host || ev.Namespace != pod.Namespace) {
			t.Errorf("-n %s streamed an event of %s/%s (host %v)", pod.Namespace, ev.Namespace, ev.Pod, ev.Host)
		}
	}
	mu.Unlock()

	// The agent, not only the plugin, refuses a token that may not get
	// the program: ask it directly (hostNetwork: the node's address).
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- the agent's self-signed certificate
	for _, tt := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {outsider.token, http.StatusForbidden}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://%s:9093/events?bpfProgram=%s", e.c.NodeIP, name), nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("agent answered %d %s, want %d", resp.StatusCode, body, tt.want)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"events", name, "--node", "no-such-node"}, "no bpfleet agent runs on node no-such-node"},
		{[]string{"events", "no-such-program"}, "no BpfProgram no-such-program"},
	} {
		out, err := exec.CommandContext(ctx, e.kubectlBPF, append(tt.args, "--kubeconfig", viewer.kubeconfig)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("kubectl bpf %v: %v %s, want an error saying %q", tt.args, err, out, tt.want)
		}
	}
}

type saCredential struct{ kubeconfig, token string }

// serviceAccountKubeconfig makes a service account in default with a
// kubeconfig holding its token. canGet grants it get and list on
// BpfPrograms; both may list pods and port-forward in bpfleet-system.
func (e *env) serviceAccountKubeconfig(t testing.TB, name string, canGet bool) saCredential {
	t.Helper()
	rules := ""
	if canGet {
		rules = `
  - {apiGroups: [bpfleet.io], resources: [bpfprograms], verbs: [get, list, watch]}`
	}
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[1]s, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: %[1]s}
rules:%[2]s
  - {apiGroups: [""], resources: [namespaces], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %[1]s}
subjects: [{kind: ServiceAccount, name: %[1]s, namespace: default}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: %[1]s, namespace: %[3]s}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list]}
  - {apiGroups: [""], resources: [pods/portforward], verbs: [get, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: %[1]s, namespace: %[3]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: %[1]s}
subjects: [{kind: ServiceAccount, name: %[1]s, namespace: default}]
`, name, rules, namespace))
	t.Cleanup(func() {
		_, _ = e.c.Kubectl(context.Background(), "delete", "--ignore-not-found", "-n", "default", "serviceaccount/"+name)
		_, _ = e.c.Kubectl(context.Background(), "delete", "--ignore-not-found", "clusterrole/"+name, "clusterrolebinding/"+name)
		_, _ = e.c.Kubectl(context.Background(), "delete", "--ignore-not-found", "-n", namespace, "role/"+name, "rolebinding/"+name)
	})
	token := strings.TrimSpace(e.kubectl(t, "-n", "default", "create", "token", name, "--duration", "10m"))
	kc := filepath.Join(t.TempDir(), name+".kubeconfig")
	e.run(t, e.c.KubectlPath(), "--kubeconfig", kc, "config", "set-cluster", "c", "--server", e.c.Config.Host, "--certificate-authority", e.c.Config.CAFile)
	e.run(t, e.c.KubectlPath(), "--kubeconfig", kc, "config", "set-credentials", "u", "--token", token)
	e.run(t, e.c.KubectlPath(), "--kubeconfig", kc, "config", "set-context", "c", "--cluster", "c", "--user", "u", "--namespace", "default")
	e.run(t, e.c.KubectlPath(), "--kubeconfig", kc, "config", "use-context", "c")
	return saCredential{kubeconfig: kc, token: token}
}
