package program

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestBundleFaultHaltsAtFirstNode: a node that refuses the target's bytes
// (BundleInvalid, e.g. an ELF program whose type differs from the signed
// manifest's) halts the rollout at once, within maxFailedNodes and on a
// release that would otherwise be paused: every node would refuse the same
// bytes. Any other failure reason keeps the old rules.
func TestBundleFaultHaltsAtFirstNode(t *testing.T) {
	f := newFleet()
	first := f.inWave(0)[0]
	startedAt := metav1.NewTime(t0.Add(-time.Minute))
	for _, tc := range []struct {
		name       string
		reason     string
		release    string
		wantHalted bool
		wantPaused string
	}{
		{"bundle fault on the fleet's release", v1alpha1.ReasonBundleInvalid, "6.18", true, ""},
		{"bundle fault on a release no node runs the target on", v1alpha1.ReasonBundleInvalid, "5.15", true, ""},
		{"verifier rejection within maxFailedNodes", v1alpha1.ReasonVerifierRejected, "6.18", false, ""},
		{"verifier rejection on another release pauses it", v1alpha1.ReasonVerifierRejected, "5.15", false, "5.15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testProgram(v1alpha1.RolloutWaves, &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, WaveStartedAt: &startedAt})
			nodes := f.views(func(n string, _ int32) *v1alpha1.BpfNodeState {
				if n != first {
					return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
				}
				s := report(n, tc.release, dNew, v1alpha1.PhaseFailed)
				s.Status.Programs[0].Reason, s.Status.Programs[0].Message = tc.reason, "program xdp_filter: manifest type \"xdp\", ELF object says \"sched_cls\""
				return s
			})
			d := DecideRollout(RolloutInput{Now: t0, Program: p, Verified: dNew, Nodes: nodes})
			r := d.Rollout
			if halted := r.HaltedReason != ""; halted != tc.wantHalted {
				t.Fatalf("halted %q, want halted=%v (RolledOut %s: %s)", r.HaltedReason, tc.wantHalted, d.RolledOut.Reason, d.RolledOut.Message)
			}
			if tc.wantHalted {
				if d.RolledOut.Reason != v1alpha1.ReasonRolledBack || !strings.Contains(r.HaltedReason, v1alpha1.ReasonBundleInvalid) || !strings.Contains(r.HaltedReason, first) {
					t.Errorf("RolledOut %s %q: want RolledBack naming %s and BundleInvalid", d.RolledOut.Reason, r.HaltedReason, first)
				}
			}
			var paused []string
			for _, k := range r.PausedKernels {
				paused = append(paused, k.Release)
			}
			if got := strings.Join(paused, ","); got != tc.wantPaused {
				t.Errorf("paused kernels %q, want %q", got, tc.wantPaused)
			}
		})
	}
}
