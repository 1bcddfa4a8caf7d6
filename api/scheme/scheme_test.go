package scheme_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestNewKnowsEveryKindBpfleetUses: the clients of the operator, the agent
// and kubectl-bpf read and write these kinds through New's scheme.
func TestNewKnowsEveryKindBpfleetUses(t *testing.T) {
	s := scheme.New()
	for _, tt := range []struct {
		obj  runtime.Object
		kind string
	}{
		{&v1alpha1.BpfProgram{}, "bpfleet.io/v1alpha1, Kind=BpfProgram"},
		{&v1alpha1.BpfNodeState{}, "bpfleet.io/v1alpha1, Kind=BpfNodeState"},
		{&v1alpha1.BundleTrustPolicy{}, "bpfleet.io/v1alpha1, Kind=BundleTrustPolicy"},
		{&corev1.Node{}, "/v1, Kind=Node"},
		{&eventsv1.Event{}, "events.k8s.io/v1, Kind=Event"},
	} {
		gvks, _, err := s.ObjectKinds(tt.obj)
		if err != nil {
			t.Errorf("%T: %v", tt.obj, err)
			continue
		}
		if got := gvks[0].String(); got != tt.kind {
			t.Errorf("%T is %s, want %s", tt.obj, got, tt.kind)
		}
	}
}
