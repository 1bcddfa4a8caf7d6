package program

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// DefaultCleanupTimeout is the default Reconciler.CleanupTimeout.
const DefaultCleanupTimeout = 10 * time.Minute

// The deletion rule. A BpfProgram carries v1alpha1.FinalizerNodeCleanup
// from its first reconcile on. Once deleted, the finalizer is released when
// no BpfNodeState reports the program any more, ignoring the states of
// nodes that are gone (their Node object is missing or being deleted). A
// node whose agent is down (or uninstalled) keeps reporting it; such nodes
// hold the deletion for at most CleanupTimeout after the deletion began,
// then the finalizer is released with a Warning Event NodesNotCleaned that
// names them. Their agents remove the program's pins when they start again
// (programs that no longer exist are collected at start), or
// `bpfleet-agent --cleanup` does on an uninstalled node.

// finalize releases a deleted program's finalizer by the deletion rule, or
// says when to look again.
func (r *Reconciler) finalize(ctx context.Context, p *v1alpha1.BpfProgram) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(p, v1alpha1.FinalizerNodeCleanup) {
		return ctrl.Result{}, nil
	}
	holding, err := r.nodesHolding(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	// The wall clock, as the API server's deletionTimestamp is (Clock
	// drives rollout pauses only).
	waited := time.Since(p.DeletionTimestamp.Time)
	if len(holding) > 0 {
		if left := r.cleanupTimeout() - waited; left > 0 {
			// Node reports wake this program; the timeout is the backstop.
			return ctrl.Result{RequeueAfter: left}, nil
		}
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, v1alpha1.ReasonNodesNotCleaned, "Finalize", "%s",
			v1alpha1.EventNote(fmt.Sprintf("released after %s while %d node(s) still report it (agent down?): %s; their agents remove it when they start, or run bpfleet-agent --cleanup there",
				r.cleanupTimeout(), len(holding), strings.Join(holding, ", "))))
	}
	before := p.DeepCopy()
	controllerutil.RemoveFinalizer(p, v1alpha1.FinalizerNodeCleanup)
	if err := r.Client.Patch(ctx, p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("remove finalizer: %w", err))
	}
	return ctrl.Result{}, nil
}

// nodesHolding returns, sorted, the nodes whose BpfNodeState still reports
// p and whose Node exists and is not being deleted.
func (r *Reconciler) nodesHolding(ctx context.Context, p *v1alpha1.BpfProgram) ([]string, error) {
	var states v1alpha1.BpfNodeStateList
	if err := r.Client.List(ctx, &states, client.MatchingFields{IndexProgramUID: string(p.UID)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list node states: %w", err)
	}
	var holding []string
	for _, s := range states.Items {
		if !s.DeletionTimestamp.IsZero() {
			continue
		}
		node := &corev1.Node{}
		err := r.Client.Get(ctx, client.ObjectKey{Name: s.Name}, node)
		switch {
		case apierrors.IsNotFound(err):
			continue // gone: its state is collected, nothing to wait for
		case err != nil:
			return nil, fmt.Errorf("get node %s: %w", s.Name, err)
		case !node.DeletionTimestamp.IsZero():
			continue
		}
		holding = append(holding, s.Name)
	}
	slices.Sort(holding)
	return holding, nil
}

func (r *Reconciler) cleanupTimeout() time.Duration {
	if r.CleanupTimeout > 0 {
		return r.CleanupTimeout
	}
	return DefaultCleanupTimeout
}
