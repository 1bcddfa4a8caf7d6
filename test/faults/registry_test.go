package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestRegistryFaultDuringPull: the operator resolves and verifies a new
// release, then the registry fails the agent's requests (500s, connections
// closed, or answers slower than the agent's 1 s registry timeout) → the
// old program keeps running and filtering, the status says why
// (PullFailed), and the node moves to the new release once the registry
// answers again.
func TestRegistryFaultDuringPull(t *testing.T) {
	e := requireEnv(t)
	n := e.Nodes[0]
	for i, mode := range []Mode{Fail500, Drop, Slow} {
		t.Run(mode.String(), func(t *testing.T) {
			p := filterProgram(t, e, fmt.Sprintf("registry-%d", i), v1Ref, n)
			removeLater(t, e, p)
			stopInProcessAgent(t, e, n)
			var args []string
			if mode == Slow {
				args = []string{"--registry-timeout", "1s"} // shorter than SlowDelay
			}
			startAgent(t, e, n, "", args...)
			create(t, e, p)
			running := waitEntry(t, e, n, p.Name, time.Minute, "v1 attached", attachedWith(v1Digest))

			proxy.OnlyOthers(true)
			proxy.SetMode(mode)
			t.Cleanup(func() { proxy.SetMode(Pass); proxy.OnlyOthers(false) })
			failedBefore := proxy.Failed()
			traffic := startStream(t, e, n)
			update(t, e, p, func(p *v1.BpfProgram) { p.Spec.Bundle.Image = v2Ref })
			held := waitEntry(t, e, n, p.Name, time.Minute, "held at v1 with PullFailed", func(s *v1.ProgramState) bool {
				return s.Reason == v1.ReasonPullFailed
			})
			if held.State != v1.PhaseAttached || held.ID != running.ID || xdpProgramID(t, n) != running.ID {
				t.Errorf("while the registry fails: %s, kernel runs %d; want v1 (id %d) still attached", describe(held), xdpProgramID(t, n), running.ID)
			}
			if !strings.Contains(held.Message, "registry") && !strings.Contains(held.Message, "500") && !strings.Contains(held.Message, "deadline") {
				t.Errorf("hold message does not say the registry failed: %q", held.Message)
			}
			time.Sleep(2 * time.Second) // a retry or two against the failing registry
			during := traffic.stop(t)

			proxy.SetMode(Pass)
			traffic = startStream(t, e, n)
			st := waitEntry(t, e, n, p.Name, time.Minute, "v2 attached after the registry recovered", attachedWith(v2Digest))
			after := traffic.stop(t)
			report(t, "registry "+mode.String()+" during pull", "%d requests failed; held: %s; during outage: %s; recovery: %s",
				proxy.Failed()-failedBefore, describe(held), during, after)
			for _, tr := range []struct {
				what string
				n    int
				bad  int
			}{{"outage", during.GoodSent - during.GoodReceived, during.BadReceived}, {"recovery", after.GoodSent - after.GoodReceived, after.BadReceived}} {
				if tr.n != 0 || tr.bad != 0 {
					t.Errorf("%s: %d good packets lost, %d packets of death through", tr.what, tr.n, tr.bad)
				}
			}
			if st.LinkID != running.LinkID {
				t.Errorf("link %d replaced by %d; the upgrade must update the link in place", running.LinkID, st.LinkID)
			}
			if proxy.Failed() == failedBefore {
				t.Error("the proxy failed no request: the fault was not exercised")
			}
		})
	}
}
