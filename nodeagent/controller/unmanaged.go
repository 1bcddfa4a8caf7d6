package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
)

// Inventory summarises the programs in the node's kernel that bpfleet did
// not load; *inventory.Scanner satisfies it.
type Inventory interface {
	// Unmanaged summarises the programs that are neither among managed (by
	// kernel id) nor pinned under the agent's bpffs root.
	Unmanaged(managed []v1alpha1.ProgramState) (*v1alpha1.UnmanagedSummary, error)
}

// ReasonUnmanagedChanged is the reason of the Event a node emits when the
// set of programs it did not load changes.
const ReasonUnmanagedChanged = "UnmanagedProgramsChanged"

// DefaultUnmanagedInterval is the least time between two status writes
// carrying a changed inventory of unmanaged programs.
const DefaultUnmanagedInterval = 30 * time.Second

// unmanaged returns the inventory the status should carry: prev while the
// kernel holds the same unmanaged programs (so an idle node computes the
// status it has and writes nothing) or while the limiter holds a changed
// inventory back (Reconcile requeues for when it allows), else the
// fresh one. The metric always follows the kernel. An inventory that cannot
// be read keeps prev.
//
// prev must be what the status says now, not an older cached copy (report
// freshens the cache with WrittenStatus): holding back to an older one
// would write it over the newer inventory.
func (r *Reconciler) unmanaged(ctx context.Context, prev *v1alpha1.UnmanagedSummary, managed []v1alpha1.ProgramState) *v1alpha1.UnmanagedSummary {
	if r.Inventory == nil {
		return prev
	}
	fresh, err := r.Inventory.Unmanaged(managed)
	if err != nil {
		log.FromContext(ctx).Error(err, "list unmanaged programs; keeping the last inventory")
		return prev
	}
	r.Metrics.SetUnmanaged(fresh.ByType)
	if inventory.Same(prev, fresh) {
		if r.UnmanagedLimiter != nil {
			r.UnmanagedLimiter.Settled()
		}
		return prev
	}
	if r.UnmanagedLimiter != nil {
		if ok, wait := r.UnmanagedLimiter.Allow(time.Now()); !ok {
			log.FromContext(ctx).V(1).Info("unmanaged programs changed; status write held back", "count", fresh.Count, "for", wait)
			return prev
		}
	}
	inventory.KeepLoadTimes(prev, fresh)
	return fresh
}

// recordUnmanaged notes a written inventory that differs from the one
// before: the limiter starts counting, and an Event says what came and went.
func (r *Reconciler) recordUnmanaged(ns *v1alpha1.BpfNodeState, before, after *v1alpha1.UnmanagedSummary) {
	if after == nil || inventory.Same(before, after) {
		return
	}
	if r.UnmanagedLimiter != nil {
		r.UnmanagedLimiter.Wrote(time.Now())
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(ns, nil, corev1.EventTypeNormal, ReasonUnmanagedChanged, "Inventory",
			"%s", v1alpha1.EventNote(inventory.Changes(before, after)))
	}
}

// unmanagedPending tells whether a changed inventory waits for the limiter,
// and for how long.
func (r *Reconciler) unmanagedPending() (time.Duration, bool) {
	if r.UnmanagedLimiter == nil {
		return 0, false
	}
	return r.UnmanagedLimiter.Pending(time.Now())
}
