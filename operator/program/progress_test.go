package program

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func TestProgressOnlyTellsCountsFromWhatNodesRun(t *testing.T) {
	base := func() v1alpha1.BpfProgramStatus {
		return v1alpha1.BpfProgramStatus{
			ResolvedDigest: "sha256:1",
			Nodes:          v1alpha1.NodeCounts{Selected: 10, Attached: 3, Pending: 7, Summary: "3/10"},
			Rollout:        &v1alpha1.RolloutStatus{TargetDigest: "sha256:1", StableDigest: "sha256:0", Wave: 1, UpdatedNodes: 3},
			Conditions: []metav1.Condition{
				{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonRolloutInProgress, Message: "3/10 node(s) run 1", ObservedGeneration: 2},
				{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNoFailures, ObservedGeneration: 2},
			},
		}
	}
	tests := []struct {
		name string
		edit func(*v1alpha1.BpfProgramStatus)
		want bool
	}{
		{"nothing changed", func(*v1alpha1.BpfProgramStatus) {}, false},
		{"more nodes attached", func(s *v1alpha1.BpfProgramStatus) {
			s.Nodes = v1alpha1.NodeCounts{Selected: 10, Attached: 5, Pending: 5, Summary: "5/10"}
			s.Rollout.UpdatedNodes = 5
			s.Conditions[0].Message = "5/10 node(s) run 1"
			s.Conditions[0].LastTransitionTime = metav1.NewTime(time.Unix(1, 0))
		}, true},
		{"kernel counts", func(s *v1alpha1.BpfProgramStatus) {
			s.Kernels = []v1alpha1.KernelCompatibility{{Release: "6.18"}}
		}, true},
		{"next wave", func(s *v1alpha1.BpfProgramStatus) { s.Rollout.Wave = 2 }, false},
		{"halted", func(s *v1alpha1.BpfProgramStatus) { s.Rollout.HaltedReason = "3 nodes failed" }, false},
		{"new target", func(s *v1alpha1.BpfProgramStatus) { s.Rollout.TargetDigest = "sha256:2" }, false},
		{"paused kernel", func(s *v1alpha1.BpfProgramStatus) {
			s.Rollout.PausedKernels = []v1alpha1.PausedKernel{{Release: "6.1"}}
		}, false},
		{"Ready turns True", func(s *v1alpha1.BpfProgramStatus) {
			s.Conditions[0].Status, s.Conditions[0].Reason = metav1.ConditionTrue, v1alpha1.ReasonAllAttached
		}, false},
		{"Degraded reason", func(s *v1alpha1.BpfProgramStatus) { s.Conditions[1].Reason = v1alpha1.ReasonNodesFailed }, false},
		{"new generation observed", func(s *v1alpha1.BpfProgramStatus) { s.Conditions[1].ObservedGeneration = 3 }, false},
		{"a condition added", func(s *v1alpha1.BpfProgramStatus) {
			s.Conditions = append(s.Conditions, metav1.Condition{Type: v1alpha1.ConditionRolledOut})
		}, false},
		{"new resolved digest", func(s *v1alpha1.BpfProgramStatus) { s.ResolvedDigest = "sha256:2" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, after := base(), base()
			r := *after.Rollout
			after.Rollout = &r
			after.Conditions = append([]metav1.Condition(nil), after.Conditions...)
			tt.edit(&after)
			if got := ProgressOnly(before, after); got != tt.want {
				t.Errorf("ProgressOnly = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProgressWaitsForTheLastStatusWrite(t *testing.T) {
	before := &v1alpha1.BpfProgram{Status: v1alpha1.BpfProgramStatus{Nodes: v1alpha1.NodeCounts{Selected: 2, Attached: 1}}}
	after := before.DeepCopy()
	after.Status.Nodes.Attached = 2
	written := func(ago time.Duration) []metav1.ManagedFieldsEntry {
		at := metav1.NewTime(time.Now().Add(-ago))
		return []metav1.ManagedFieldsEntry{
			{Manager: "operator", Subresource: "status", Time: &at},
			{Manager: "kubectl", Time: &metav1.Time{Time: time.Now()}},
		}
	}
	tests := []struct {
		name     string
		interval time.Duration
		fields   []metav1.ManagedFieldsEntry
		wantMin  time.Duration
		wantMax  time.Duration
	}{
		{"never written: at once", 0, nil, 0, 0},
		{"written just now: waits about the interval", 0, written(0), DefaultProgressInterval, DefaultProgressInterval + time.Second},
		{"written long ago: at once", 0, written(time.Minute), 0, 0},
		{"interval off", -1, written(0), 0, 0},
		{"a write from the future (skew) waits one interval at most", 0, written(-time.Hour), DefaultProgressInterval, DefaultProgressInterval + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reconciler{ProgressInterval: tt.interval}
			p := after.DeepCopy()
			p.ManagedFields = tt.fields
			got := r.progressWait(before, p)
			if got < tt.wantMin-100*time.Millisecond || got > tt.wantMax {
				t.Errorf("waits %s, want %s..%s", got, tt.wantMin, tt.wantMax)
			}
		})
	}
}
