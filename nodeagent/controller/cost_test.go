package controller_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/procstat"
)

// TestIdleAgentCost: an agent with a program attached and a one-second
// resync costs little CPU and writes nothing. It logs CPU and RSS of the
// test process (the agent, the in-process registry and the test itself; the
// API server runs in its own process).
func TestIdleAgentCost(t *testing.T) {
	for _, programs := range []int{1, 10} {
		t.Run(fmt.Sprintf("%d programs", programs), func(t *testing.T) { idleAgentCost(t, programs) })
	}
}

// idleAgentCost runs an agent with n BpfPrograms attached (the XDP filter,
// then tcx counters on the same interface) and measures it idle.
func idleAgentCost(t *testing.T, n int) {
	w := newWorld(t)
	ref, digest := w.pushPrograms(t, "v1", "0.1.0", true, kernelprog.XDPFilter+"=xdp", kernelprog.TCCount+"=tc")
	progs := []*v1alpha1.BpfProgram{w.createProgram(t, ref, digest, denyEntry(deniedPort))}
	for len(progs) < n {
		progs = append(progs, w.createTCProgram(t, ref, digest))
	}
	w.startAgent(t, func(o *controller.Options) { o.ResyncInterval = time.Second })
	for _, p := range progs {
		w.waitEntry(t, p, "attached", attachedAt(digest))
	}
	time.Sleep(time.Second)

	before := w.state(t).ResourceVersion
	cpu0 := processCPU(t)
	const window = 6 * time.Second
	time.Sleep(window)
	used := processCPU(t) - cpu0
	if after := w.state(t).ResourceVersion; after != before {
		t.Errorf("BpfNodeState written while idle: resourceVersion %s → %s", before, after)
	}
	share := float64(used) / float64(window) * 100
	t.Logf("idle, %d programs, resync 1s: CPU %s over %s (%.2f%% of one core), RSS %d MiB", n, used, window, share, rssKiB(t)/1024)
	if share > 5 {
		t.Errorf("idle agent used %.2f%% of a core, want under 5%%", share)
	}
}

// createTCProgram is a BpfProgram counting w.veth.A's ingress with tcx.
func (w *world) createTCProgram(t *testing.T, ref, digest string) *v1alpha1.BpfProgram {
	t.Helper()
	return w.createAttached(t, "tc-"+randHex(4), ref, digest, v1alpha1.ProgramAttachment{
		Name: kernelprog.TCCount,
		TC: &v1alpha1.TCAttach{
			Interfaces: v1alpha1.InterfaceSelector{Names: []string{w.veth.A}},
			Direction:  v1alpha1.TCIngress,
		},
	})
}

func processCPU(t *testing.T) time.Duration {
	t.Helper()
	d, err := procstat.SelfCPU()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func rssKiB(t *testing.T) int64 {
	t.Helper()
	s, err := procstat.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return s.RSSKiB
}
