package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/localenv"
)

// phases are the failpoints of a load, in order (see
// nodeagent/internal/failpoint/failpoint.go).
var phases = []struct {
	name string
	// load says what the filter does after a kill there on a first load,
	// until the restarted agent attaches it.
	load string
	// upgrade says the same for an upgrade from v1 to v2.
	upgrade string
}{
	{"after-verify", "verified, nothing pulled or loaded: no filter until the restart", "v1 keeps filtering; the restart verifies and pulls v2"},
	{"after-pull", "nothing loaded: no filter until the restart", "v1 keeps filtering"},
	{"after-load", "loaded, not attached: gone with the process; no filter until the restart", "v1 keeps filtering; v2's objects die with the process"},
	{"after-attach", "attached, not pinned: the link dies with the process; no filter until the restart", "the pinned link already runs v2 (atomic Link.Update); v1's pins remain, the restart swaps v2 in again"},
	{"after-pin", "pinned, no record: filtering; the restart removes the unrecorded pins and attaches again (a gap of milliseconds)", "v2 runs and is pinned, the record says v1: the restart loads v2 again and swaps it in atomically"},
	{"after-record", "pinned and recorded: filtering; the restart re-adopts it", "v2 runs, pinned and recorded: re-adopted"},
}

// TestAgentKilledAtEveryPhase SIGKILLs the agent at each failpoint of a first
// load and of an upgrade, under traffic, restarts it without the failpoint
// and checks the end state: the right digest Attached, one program on eth0
// through one (pinned) link, no pin, program or link left over, and for an
// upgrade not one packet of death through nor one good packet lost.
func TestAgentKilledAtEveryPhase(t *testing.T) {
	e := requireEnv(t)
	n := e.Nodes[0]
	for i, ph := range phases {
		for _, upgrade := range []bool{false, true} {
			kind := "load"
			if upgrade {
				kind = "upgrade"
			}
			t.Run(kind+"/"+ph.name, func(t *testing.T) {
				name := fmt.Sprintf("kill-%s-%d", kind, i)
				p := filterProgram(t, e, name, v1Ref, n)
				removeLater(t, e, p)
				stopInProcessAgent(t, e, n)
				killAtPhase(t, e, n, p, ph.name, upgrade)
			})
		}
	}
}

func killAtPhase(t *testing.T, e *localenv.Env, n *localenv.Node, p *v1.BpfProgram, phase string, upgrade bool) {
	var linkBefore uint32
	if upgrade {
		a := startAgent(t, e, n, "")
		create(t, e, p)
		st := waitEntry(t, e, n, p.Name, time.Minute, "v1 attached", attachedWith(v1Digest))
		linkBefore = st.LinkID
		a.kill()
	}
	before := startStream(t, e, n)
	doomed := startAgent(t, e, n, phase)
	want := v1Digest
	if upgrade {
		want = v2Digest
		// Let the agent re-adopt v1 before the new digest arrives.
		waitEntry(t, e, n, p.Name, 30*time.Second, "v1 re-adopted", attachedWith(v1Digest))
		update(t, e, p, func(p *v1.BpfProgram) { p.Spec.Bundle.Image = v2Ref })
	} else {
		create(t, e, p)
	}
	if err := doomed.wait(time.Minute); err != nil {
		t.Fatalf("failpoint %s never fired: %v\nagent log:\n%s", phase, err, doomed.Log())
	}
	beforeKill := before.stop(t)
	gap := startStream(t, e, n) // from the kill until the restarted agent attached
	if !strings.Contains(doomed.Log(), "bpfleet failpoint "+phase+": SIGKILL") || doomed.exitCode() != -1 {
		t.Fatalf("agent exited (code %d) without the failpoint %s:\n%s", doomed.exitCode(), phase, doomed.Log())
	}
	agent := startAgent(t, e, n, "")
	waitEntry(t, e, n, p.Name, time.Minute, "the right digest attached", attachedWith(want))
	inGap := gap.stop(t)
	after := startStream(t, e, n)
	time.Sleep(500 * time.Millisecond)
	afterAttach := after.stop(t)
	st := waitEntry(t, e, n, p.Name, 10*time.Second, "still attached", attachedWith(want))
	leaks := checkClean(t, n, st, agent.cmd.Process.Pid)
	for _, l := range leaks {
		t.Errorf("leak: %s", l)
	}
	kind := "load"
	if upgrade {
		kind = "upgrade"
	}
	report(t, fmt.Sprintf("SIGKILL %s %s", kind, phase), "%s attached; until kill: %s; kill→reattached: %s; after: %s; leaks %d",
		want[:19], beforeKill, inGap, afterAttach, len(leaks))
	for _, tr := range []localenv.Traffic{beforeKill, inGap, afterAttach} {
		if tr.GoodReceived != tr.GoodSent {
			t.Errorf("lost %d good packets of %d", tr.GoodSent-tr.GoodReceived, tr.GoodSent)
		}
	}
	if afterAttach.BadReceived != 0 {
		t.Errorf("%d packets of death through the recovered filter", afterAttach.BadReceived)
	}
	if upgrade {
		if beforeKill.BadReceived+inGap.BadReceived != 0 {
			t.Errorf("packets of death got through an upgrade killed %s (%s, then %s); the old program must filter until Link.Update", phase, beforeKill, inGap)
		}
		if st.LinkID != linkBefore {
			t.Errorf("link %d replaced by %d: an upgrade must swap the program in the same link", linkBefore, st.LinkID)
		}
	}
	if phase == "after-record" && inGap.BadReceived != 0 {
		t.Errorf("%d packets of death between the kill and the re-adoption of a recorded program", inGap.BadReceived)
	}
}

// stream is a traffic stream of one good packet and one packet of death
// every 2 ms.
type stream struct{ s *localenv.TrafficStream }

func startStream(t *testing.T, e *localenv.Env, n *localenv.Node) *stream {
	t.Helper()
	s, err := e.StartTraffic(n, 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{s: s}
	t.Cleanup(func() { st.s.Stop() })
	return st
}

// stop stops the stream and returns its counts.
func (s *stream) stop(t *testing.T) localenv.Traffic {
	t.Helper()
	tr := s.s.Stop()
	if err := s.s.Err(); err != nil {
		t.Fatal(err)
	}
	return tr
}
