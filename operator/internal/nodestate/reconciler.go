// Package nodestate garbage-collects BpfNodeStates whose Node is gone. Agents
// cannot be trusted to set an owner reference to their Node (and a node that
// vanished has no agent left to clean up), so the operator deletes the
// BpfNodeState named after a Node that no longer exists; the BpfPrograms it
// reported are then re-summed without it.
package nodestate

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Reconciler deletes the BpfNodeState of a deleted Node.
type Reconciler struct {
	// Client reads through the manager's cache.
	Client client.Client
	// APIReader reads the API server directly, to confirm a Node is gone
	// before deleting its state (the Node cache may lag behind).
	APIReader client.Reader
}

// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfnodestates,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// Reconcile deletes BpfNodeState req.Name when Node req.Name does not exist.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	state := &v1alpha1.BpfNodeState{}
	if err := r.Client.Get(ctx, req.NamespacedName, state); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !state.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	exists, err := r.nodeExists(ctx, req.Name)
	if err != nil || exists {
		return ctrl.Result{}, err
	}
	// Preconditions: delete the state we looked at, not one an agent of a
	// new node with the same name created since.
	uid := state.UID
	if err := r.Client.Delete(ctx, state, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("delete node state %s: %w", req.Name, err)
	}
	log.FromContext(ctx).Info("deleted the BpfNodeState of a deleted Node", "node", req.Name)
	return ctrl.Result{}, nil
}

// nodeExists asks the cache, then the API server when the cache says no.
func (r *Reconciler) nodeExists(ctx context.Context, name string) (bool, error) {
	node := &corev1.Node{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, node)
	if err == nil {
		return node.DeletionTimestamp.IsZero() || len(node.Finalizers) > 0, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("get node %s: %w", name, err)
	}
	if r.APIReader == nil {
		return false, nil
	}
	err = r.APIReader.Get(ctx, client.ObjectKey{Name: name}, node)
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("get node %s: %w", name, err)
	}
}

// SetupWithManager wakes the reconciler for every BpfNodeState created (an
// agent may report for a node already gone) and for every Node deleted.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager) error {
	err := ctrl.NewControllerManagedBy(mgr).
		Named("bpfnodestate-gc").
		// Each reconcile is two or three small API calls; a zone of nodes
		// going away at once should not queue behind one worker.
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		For(&v1alpha1.BpfNodeState{}, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool { return false },
		})).
		Watches(&corev1.Node{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
			UpdateFunc: func(event.UpdateEvent) bool { return false },
		})).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build bpfnodestate-gc controller: %w", err)
	}
	return nil
}
