package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/livetraffic/death"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// cleanupTimeout is the operator's --cleanup-timeout in the suite's
// overlay: how long a deleted BpfProgram waits for a node whose agent is
// down.
const cleanupTimeout = 20 * time.Second

// TestUninstall follows docs/operations.md "Uninstall" on the real node in
// the worst case, a node whose agent is down: the BpfProgram deletion
// waits for it until the cleanup timeout and records it (NodesNotCleaned),
// `kubectl delete -k` removes the operator, agents and CRDs while the
// filter keeps running on its pins, and `bpfleet-agent --cleanup` on the
// node detaches and unpins it. It installs again at the end for the
// suite's teardown.
func TestUninstall(t *testing.T) {
	e := requireSuite(t)
	bpftool := privileged.RequireCommand(t, "bpftool")
	ctx := context.Background()
	f, _ := e.newFilter(t, "realnode-uninstall")
	pins := filepath.Join(agentBPFFS, string(f.uid))
	if _, err := os.Stat(pins); err != nil {
		t.Fatalf("no pins of the attached filter: %v", err)
	}

	// The node's agent goes down: nothing detaches the filter any more.
	e.kubectl(t, "-n", namespace, "delete", "daemonset", agentDS, "--wait=true", "--timeout=2m")
	envtest.Eventually(t, 2*time.Minute, func() error {
		if _, err := e.agentPod(ctx); err == nil {
			return fmt.Errorf("agent pod still running")
		}
		return nil
	})

	began := time.Now()
	e.kubectl(t, "delete", "bpfprograms", "--all", "--wait=true", "--timeout=2m")
	waited := time.Since(began)
	if waited < cleanupTimeout-2*time.Second {
		t.Errorf("the deletion took %s: it should wait up to the cleanup timeout %s for the node that still reports it", waited, cleanupTimeout)
	}
	events := e.kubectl(t, "get", "events", "-A", "--field-selector", "reason="+v1.ReasonNodesNotCleaned, "-o", "custom-columns=MESSAGE:.message,OBJECT:.involvedObject.name")
	if !strings.Contains(events, f.name) || !strings.Contains(events, e.c.NodeName) {
		t.Errorf("no NodesNotCleaned Event naming %s and %s:\n%s", f.name, e.c.NodeName, events)
	}

	e.kubectl(t, "delete", "-k", e.overlay, "--ignore-not-found", "--wait=true", "--timeout=2m") // the DaemonSet is gone already
	crds := e.kubectl(t, "get", "crds", "-o", "name")
	if strings.Contains(crds, "bpfleet.io") {
		t.Errorf("bpfleet CRDs left after kubectl delete -k:\n%s", crds)
	}
	c := death.During(t, f.path(t), func(func()) { time.Sleep(4 * time.Second) })
	t.Logf("uninstalled, agent down, filter on its pins: %s", c)
	c.Check(t)

	agent := filepath.Join(e.tmp, "bpfleet-agent")
	build := exec.Command("go", "build", "-o", agent, "./cmd/bpfleet-agent")
	build.Dir = repoDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bpfleet-agent: %v\n%s", err, out)
	}
	// The DaemonSet's paths (config/agent/daemonset.yaml) on the node.
	out := e.run(t, agent, "--cleanup", "--bpffs-root="+agentBPFFS,
		"--state-dir=/var/lib/bpfleet/state", "--cache-dir=/var/lib/bpfleet/cache")
	t.Logf("bpfleet-agent --cleanup: %s", strings.TrimSpace(out))

	if _, err := os.Stat(agentBPFFS); !os.IsNotExist(err) {
		t.Errorf("pin root %s left after cleanup: %v", agentBPFFS, err)
	}
	if link := netnsRun(t, "ip", "-d", "link", "show", "dev", f.nodeIface); strings.Contains(link, "prog/xdp") {
		t.Errorf("XDP program still attached to %s after cleanup:\n%s", f.nodeIface, link)
	}
	if err := exec.Command(bpftool, "prog", "show", "id", strconv.FormatUint(uint64(f.id), 10)).Run(); err == nil {
		t.Errorf("program id %d still loaded after cleanup", f.id)
	}
	records, _ := os.ReadDir("/var/lib/bpfleet/state/programs")
	if len(records) > 0 {
		t.Errorf("%d agent records left under /var/lib/bpfleet/state/programs", len(records))
	}

	// Back to the installed product for the rest of the suite.
	e.forgetTrust(t)
	if err := e.install(ctx); err != nil {
		t.Fatalf("install again: %v", err)
	}
}

func netnsRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// forgetTrust makes the next bundle push create a key pair and trust
// policy again: the policy went with the CRDs.
func (e *env) forgetTrust(t *testing.T) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(e.tmp, "keys")); err != nil {
		t.Fatal(err)
	}
	e.key = ""
}
