package simkernel_test

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/scale/simkernel"
)

// The simulator drives the real reconciler.
var _ controller.Dataplane = (*simkernel.Dataplane)(nil)

// bundle is a dataplane.Bundle holding one program.
type bundle struct{ program string }

func (b bundle) Object(string) ([]byte, error) { return nil, nil }
func (b bundle) Program(name string) (*format.Program, bool) {
	if name != b.program {
		return nil, false
	}
	return &format.Program{Name: name}, true
}
func (b bundle) Map(string) (*format.Map, bool) { return nil, false }

func desired(digest string, hold error) controller.Desired {
	d := controller.Desired{
		Name: "probe", UID: types.UID("uid-1"), Generation: 1, Digest: digest, Hold: hold,
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{
			Name: "exec_trace", Tracepoint: &v1alpha1.TracepointAttach{Group: "sched", Name: "sched_process_exec"},
		}}},
	}
	if hold == nil {
		d.Bundle = bundle{program: "exec_trace"}
	}
	return d
}

func TestApply(t *testing.T) {
	const good, bad, next = "sha256:aa", "sha256:bb", "sha256:cc"
	tests := []struct {
		name string
		// steps are applied in order; the last one's states are checked.
		steps []controller.Desired
		// state, reason and digest are what the one entry reports.
		state  v1alpha1.ProgramPhase
		reason string
		digest string
		// loads is how many programs were loaded in all.
		loads int
	}{
		{name: "attach", steps: []controller.Desired{desired(good, nil)},
			state: v1alpha1.PhaseAttached, reason: v1alpha1.ReasonAttached, digest: good, loads: 1},
		{name: "same digest again loads nothing", steps: []controller.Desired{desired(good, nil), desired(good, nil)},
			state: v1alpha1.PhaseAttached, reason: v1alpha1.ReasonAttached, digest: good, loads: 1},
		{name: "upgrade", steps: []controller.Desired{desired(good, nil), desired(next, nil)},
			state: v1alpha1.PhaseAttached, reason: v1alpha1.ReasonAttached, digest: next, loads: 2},
		{name: "failing digest keeps the old one running", steps: []controller.Desired{desired(good, nil), desired(bad, nil)},
			state: v1alpha1.PhaseFailed, reason: v1alpha1.ReasonVerifierRejected, digest: bad, loads: 1},
		{name: "back to the stable digest after a failure", steps: []controller.Desired{desired(good, nil), desired(bad, nil), desired(good, nil)},
			state: v1alpha1.PhaseAttached, reason: v1alpha1.ReasonAttached, digest: good, loads: 1},
		{name: "held before anything runs", steps: []controller.Desired{desired(good, context.DeadlineExceeded)},
			state: v1alpha1.PhasePending, reason: v1alpha1.ReasonWaitingForBundle, digest: good, loads: 0},
		{name: "held keeps what runs", steps: []controller.Desired{desired(good, nil), desired(next, context.DeadlineExceeded)},
			state: v1alpha1.PhaseAttached, reason: v1alpha1.ReasonWaitingForBundle, digest: good, loads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dp := simkernel.New(simkernel.Options{Node: "n1", LoadLatency: time.Microsecond, Fail: func(d string) bool { return d == bad }})
			var states []v1alpha1.ProgramState
			for _, d := range tt.steps {
				states = dp.Apply(context.Background(), []controller.Desired{d})
			}
			if len(states) != 1 {
				t.Fatalf("got %d states, want 1: %+v", len(states), states)
			}
			s := states[0]
			if s.State != tt.state || s.Reason != tt.reason || s.Digest != tt.digest {
				t.Errorf("got %s/%s at %s, want %s/%s at %s (%s)", s.State, s.Reason, s.Digest, tt.state, tt.reason, tt.digest, s.Message)
			}
			if s.State == v1alpha1.PhaseAttached && (s.ID == 0 || s.LinkID == 0 || s.Tag == "" || s.AttachPoint != "tracepoint/sched/sched_process_exec") {
				t.Errorf("attached entry lacks bpftool fields: %+v", s)
			}
			if got := dp.Loads(); got != tt.loads {
				t.Errorf("loaded %d programs, want %d", got, tt.loads)
			}
		})
	}
}

func TestApplyRemovesWhatIsNotDesired(t *testing.T) {
	dp := simkernel.New(simkernel.Options{Node: "n1"})
	dp.Apply(context.Background(), []controller.Desired{desired("sha256:aa", nil)})
	if got := dp.Apply(context.Background(), nil); len(got) != 0 {
		t.Errorf("states after an empty desired set: %+v", got)
	}
	if got := dp.Snapshot(); len(got) != 0 {
		t.Errorf("snapshot after an empty desired set: %+v", got)
	}
}
