package rollout_test

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func targetTestProgram() *v1alpha1.BpfProgram {
	return &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u-1", Generation: 3, CreationTimestamp: metav1.NewTime(time.Unix(1000, 0))},
		Spec: v1alpha1.BpfProgramSpec{
			Bundle:  v1alpha1.BundleSource{Image: "r/x:v1"},
			Rollout: v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutWaves, Waves: []int32{10, 100}},
		},
		Status: v1alpha1.BpfProgramStatus{
			ResolvedDigest: "sha256:bb",
			Nodes:          v1alpha1.NodeCounts{Selected: 5, Attached: 2},
			Rollout: &v1alpha1.RolloutStatus{
				TargetDigest: "sha256:bb", StableDigest: "sha256:aa", Wave: 1,
				UpdatedNodes: 2, FailedNodes: []string{"n-9"}, WaveStartedAt: &metav1.Time{Time: time.Unix(2000, 0)},
				PausedKernels: []v1alpha1.PausedKernel{{Release: "6.1", Node: "n-9"}},
			},
		},
	}
}

// An agent's BpfProgram rebuilt from the target gives every node the digest
// the full BpfProgram gives it, on every kernel.
func TestProgramOfTargetRunsTheSameDigests(t *testing.T) {
	p := targetTestProgram()
	got := rollout.ProgramOf(&v1alpha1.BpfProgramTarget{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Spec: rollout.TargetOf(p)})
	if got.Name != p.Name || got.UID != p.UID || got.Generation != p.Generation || !got.CreationTimestamp.Equal(&p.CreationTimestamp) {
		t.Fatalf("identity %s/%s/%d/%v, want %s/%s/%d/%v", got.Name, got.UID, got.Generation, got.CreationTimestamp, p.Name, p.UID, p.Generation, p.CreationTimestamp)
	}
	if !equality.Semantic.DeepEqual(got.Spec, p.Spec) || got.Status.ResolvedDigest != p.Status.ResolvedDigest {
		t.Fatalf("spec or resolved digest differ: %+v", got)
	}
	for _, node := range []string{"n-1", "n-2", "n-3", "n-4", "n-5", "n-6", "n-7", "n-8"} {
		for _, release := range []string{"", "6.1", "6.18"} {
			if a, b := rollout.DigestForNodeKernel(&got, node, release), rollout.DigestForNodeKernel(p, node, release); a != b {
				t.Errorf("%s on %q: target gives %q, program %q", node, release, a, b)
			}
		}
	}
}

// Progress alone (node counts, updated and failed nodes, conditions, the
// wave's start) leaves the target as it was; what a node runs changes it.
func TestTargetOfIgnoresProgress(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(*v1alpha1.BpfProgram)
		changes bool
	}{
		{"node counts", func(p *v1alpha1.BpfProgram) { p.Status.Nodes.Attached = 5 }, false},
		{"updated nodes", func(p *v1alpha1.BpfProgram) { p.Status.Rollout.UpdatedNodes = 4 }, false},
		{"failed nodes", func(p *v1alpha1.BpfProgram) { p.Status.Rollout.FailedNodes = nil }, false},
		{"wave started", func(p *v1alpha1.BpfProgram) { p.Status.Rollout.WaveStartedAt = nil }, false},
		{"condition", func(p *v1alpha1.BpfProgram) {
			p.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue}}
		}, false},
		{"observed generation", func(p *v1alpha1.BpfProgram) { p.Status.ObservedGeneration = 3 }, false},
		{"wave", func(p *v1alpha1.BpfProgram) { p.Status.Rollout.Wave = 2 }, true},
		{"halt", func(p *v1alpha1.BpfProgram) { p.Status.Rollout.HaltedReason = "x" }, true},
		{"paused kernel", func(p *v1alpha1.BpfProgram) { p.Status.Rollout.PausedKernels = nil }, true},
		{"target", func(p *v1alpha1.BpfProgram) { p.Status.Rollout.TargetDigest = "sha256:cc" }, true},
		{"generation", func(p *v1alpha1.BpfProgram) { p.Generation = 4 }, true},
		{"spec", func(p *v1alpha1.BpfProgram) { p.Spec.Bundle.Image = "r/x:v2" }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := targetTestProgram()
			before := rollout.TargetOf(p)
			tc.edit(p)
			if changed := !equality.Semantic.DeepEqual(before, rollout.TargetOf(p)); changed != tc.changes {
				t.Errorf("target changed = %v, want %v", changed, tc.changes)
			}
		})
	}
}

// A first rollout's completion (stable := target) is no change to the
// target when every node ran the target already; while some wave, halt or
// paused kernel keeps nodes off the target, it is.
func TestTargetOfFirstRolloutCompletion(t *testing.T) {
	const d = "sha256:bb"
	cases := []struct {
		name    string
		rollout v1alpha1.RolloutStatus
		waves   []int32
		changes bool
	}{
		{"all at once", v1alpha1.RolloutStatus{TargetDigest: d}, nil, false},
		{"last wave", v1alpha1.RolloutStatus{TargetDigest: d, Wave: 1}, []int32{10, 100}, false},
		{"first of two waves", v1alpha1.RolloutStatus{TargetDigest: d, Wave: 0}, []int32{10, 100}, true},
		{"paused kernel", v1alpha1.RolloutStatus{TargetDigest: d, PausedKernels: []v1alpha1.PausedKernel{{Release: "6.1"}}}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := targetTestProgram()
			p.Spec.Rollout = v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutAllAtOnce}
			if tc.waves != nil {
				p.Spec.Rollout = v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutWaves, Waves: tc.waves}
			}
			r := tc.rollout
			p.Status.Rollout = &r
			during := rollout.TargetOf(p)
			done := *p.DeepCopy()
			done.Status.Rollout.StableDigest = d
			if changed := !equality.Semantic.DeepEqual(during, rollout.TargetOf(&done)); changed != tc.changes {
				t.Errorf("completion changes the target = %v, want %v", changed, tc.changes)
			}
			got := rollout.ProgramOf(&v1alpha1.BpfProgramTarget{Spec: during})
			for _, node := range []string{"n-1", "n-2", "n-3", "n-4", "n-5", "n-6"} {
				for _, release := range []string{"", "6.1"} {
					if a, b := rollout.DigestForNodeKernel(&got, node, release), rollout.DigestForNodeKernel(p, node, release); a != b {
						t.Errorf("%s on %q: target gives %q, program %q", node, release, a, b)
					}
				}
			}
		})
	}
}
