package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// NodeStatus exposes the status the reconciler would write, for tests of
// its bounds.
func (r *Reconciler) NodeStatus(prev v1alpha1.BpfNodeStateStatus, states []v1alpha1.ProgramState, verified map[types.UID]time.Time, withStats bool) v1alpha1.BpfNodeStateStatus {
	return r.nodeStatus(prev, states, verified, withStats)
}

// StatusEqual exposes statusEqual.
func StatusEqual(a, b v1alpha1.BpfNodeStateStatus, withStats bool) bool {
	return statusEqual(a, b, withStats)
}
