package controller_test

import (
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/netns"
)

// TestAgentFollowsInterfacesAndRefreshesStats: with the periodic resync out
// of the way, an interface that disappears and comes back is attached again
// within a second (the dataplane's netlink changes drive a reconcile), and a
// stats interval writes fresh run counts into status.
func TestAgentFollowsInterfacesAndRefreshesStats(t *testing.T) {
	w := newWorld(t)
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t, func(o *controller.Options) {
		o.ResyncInterval = time.Hour
		o.Stats = true
		o.StatsInterval = 500 * time.Millisecond
	})
	first := w.waitEntry(t, p, "attached", attachedAt(digest))

	t.Run("stats refresh", func(t *testing.T) {
		w.delivered(t, openPort, 10)
		w.waitEntry(t, p, "run count in status", func(s v1alpha1.ProgramState) bool {
			return s.RunCount >= 10 && s.RunTimeNs > 0 && s.NsPerRun > 0
		})
	})

	t.Run("interface comes back", func(t *testing.T) {
		netns.Run(t, "ip", "-n", w.agentNS.Name, "link", "del", w.veth.A)
		gone := time.Now()
		netns.Run(t, "ip", "-n", w.agentNS.Name, "link", "add", w.veth.A, "type", "veth", "peer", "name", w.veth.B, "netns", w.peerNS.Name)
		netns.Run(t, "ip", "-n", w.agentNS.Name, "addr", "add", agentAddr+"/24", "dev", w.veth.A)
		netns.Run(t, "ip", "-n", w.peerNS.Name, "addr", "add", peerAddr+"/24", "dev", w.veth.B)
		netns.Run(t, "ip", "-n", w.agentNS.Name, "link", "set", w.veth.A, "up")
		netns.Run(t, "ip", "-n", w.peerNS.Name, "link", "set", w.veth.B, "up")
		e := w.waitEntry(t, p, "attached to the new interface", func(s v1alpha1.ProgramState) bool {
			return attachedAt(digest)(s) && s.LinkID != first.LinkID
		})
		took := time.Since(gone)
		t.Logf("interface deleted and re-created → Attached again in status: %s", took)
		if took > 3*time.Second {
			t.Errorf("re-attached after %s, want about a second", took)
		}
		if e.ID != first.ID {
			t.Errorf("program id %d, want %d: only the link is new", e.ID, first.ID)
		}
		if got := w.delivered(t, deniedPort, 5); got != 0 {
			t.Errorf("%d datagrams to the denied port arrived on the new interface", got)
		}
	})
}
