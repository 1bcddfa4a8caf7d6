package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/livetraffic/death"
)

// TestBPFFSGuardsOnRealNode: the agent pod refuses a pin root it would
// share with another tool, under in-kernel traffic through a filter it
// attached before: with a foreign directory under its root (another
// tool's pins) it does not start, and with --bpffs-root at the bpffs mount
// itself neither; the message names the reason. The filter keeps dropping
// every packet of death meanwhile, the foreign directory is untouched, and
// once the root is bpfleet's alone again the new agent pod re-adopts the
// filter with its program id.
func TestBPFFSGuardsOnRealNode(t *testing.T) {
	e := requireSuite(t)
	f, _ := e.newFilter(t, "realnode-bpffs-guard")
	foreign := filepath.Join(agentBPFFS, "realnode-other-tool")
	ctx := context.Background()
	c := death.During(t, f.path(t), func(func()) {
		if err := os.Mkdir(foreign, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(foreign) })
		e.restartAgentPod(t)
		e.waitAgentRefuses(t, "holds realnode-other-tool")
		if _, err := os.Stat(foreign); err != nil {
			t.Errorf("the foreign directory is gone: %v", err)
		}
		if err := os.Remove(foreign); err != nil {
			t.Fatal(err)
		}

		e.kubectl(t, "-n", namespace, "patch", "daemonset", agentDS, "--type=json", "-p",
			`[{"op":"replace","path":"/spec/template/spec/containers/0/args/0","value":"--bpffs-root=/sys/fs/bpf"}]`)
		e.waitAgentRefuses(t, "is a mount root")
		e.kubectl(t, "apply", "-k", e.overlay)
		if err := e.waitInstalled(ctx, e.agentImages[0], 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		e.waitReadopted(t, f)
		time.Sleep(time.Second)
	})
	t.Logf("agent refused a shared pin root twice under in-kernel traffic: %s", c)
	c.Check(t)
}

// restartAgentPod deletes the agent pod: the DaemonSet starts another.
func (e *env) restartAgentPod(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	old, err := e.agentPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
}

// waitAgentRefuses waits until an agent pod's container has exited with
// message in its log, and is not ready.
func (e *env) waitAgentRefuses(t *testing.T, message string) {
	t.Helper()
	ctx := context.Background()
	envtest.Eventually(t, 2*time.Minute, func() error {
		var pods corev1.PodList
		if err := e.client.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/name": agentDS}); err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || len(p.Status.ContainerStatuses) == 0 {
				continue
			}
			cs := p.Status.ContainerStatuses[0]
			if cs.RestartCount == 0 && cs.State.Terminated == nil {
				continue
			}
			if cs.Ready {
				return fmt.Errorf("agent pod %s is ready", p.Name)
			}
			out, _ := e.c.Kubectl(ctx, "-n", namespace, "logs", p.Name, "-c", "agent", "--previous")
			if strings.Contains(out, message) {
				return nil
			}
			return fmt.Errorf("agent pod %s exited without %q in its log: %s", p.Name, message, out)
		}
		return fmt.Errorf("no agent pod has exited yet")
	})
}
