package program

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestMapIncompatibleHaltsRollout: the row an agent writes when it refuses
// a digest whose preserved map does not fit the running one (Failed, the
// new digest, reason MapIncompatible, the old version still running) is a
// failed node for that digest like any load failure: the summary counts it
// and, past maxFailedNodes, the rollout halts and rolls back to the stable
// digest, naming the nodes and the reason.
func TestMapIncompatibleHaltsRollout(t *testing.T) {
	f := newFleet()
	refused := func(n string) *v1alpha1.BpfNodeState {
		s := report(n, "6.18", dNew, v1alpha1.PhaseFailed)
		for i := range s.Status.Programs {
			s.Status.Programs[i].Reason = v1alpha1.ReasonMapIncompatible
			s.Status.Programs[i].Message = "keeping " + dOld + " running: preserved map counters: running map has value size 8, new version 16"
		}
		return s
	}
	nodes := f.views(func(n string, w int32) *v1alpha1.BpfNodeState {
		switch {
		case w == 0:
			return report(n, "6.18", dNew, v1alpha1.PhaseAttached)
		case w == 1:
			return refused(n)
		}
		return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
	})
	startedAt := metav1.NewTime(t0.Add(-time.Minute))
	p := testProgram(v1alpha1.RolloutWaves, &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, WaveStartedAt: &startedAt})

	s := Summarize(SummaryInput{Program: p, Nodes: nodes})
	if s.Counts.Failed != int32(len(f.inWave(1))) {
		t.Fatalf("summary counts %d failed nodes, want the %d of wave 1", s.Counts.Failed, len(f.inWave(1)))
	}
	d := DecideRollout(RolloutInput{Now: t0, Program: p, Verified: dNew, Nodes: nodes})
	r := d.Rollout
	if r == nil || r.HaltedReason == "" || d.RolledOut.Reason != v1alpha1.ReasonRolledBack {
		t.Fatalf("rollout %+v, reason %s: want halted and rolled back", r, d.RolledOut.Reason)
	}
	first := f.inWave(1)[0]
	if !strings.Contains(r.HaltedReason, first+" (xdp_filter: MapIncompatible") {
		t.Errorf("halted reason %q does not name %s with MapIncompatible", r.HaltedReason, first)
	}
}
