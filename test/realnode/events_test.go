package realnode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/bpf/exectrace"
	"github.com/bpfleet/bpfleet/test/envtest"
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

// TestEventsTaggedWithPod: exec-trace with spec.events on; a command run in
// a pod appears in the agent pod's log (kubectl logs) as a JSON line with
// the pod's namespace, name, container and labels; a command of the host is
// tagged as the host's.
func TestEventsTaggedWithPod(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
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
	pod := e.sleeperPod(t, "realnode-exec", map[string]string{"app": "exec-demo"})
	time.Sleep(2 * time.Second) // the agent's reader starts within a second of Attached

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

// sleeperPod runs a busybox pod that sleeps, labelled labels, and waits
// until it runs.
func (e *env) sleeperPod(t testing.TB, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{{Name: "sleeper", Image: e.c.WorkloadImage, Command: []string{"/bin/sleep", "3600"}}},
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
