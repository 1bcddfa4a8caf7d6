package program

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// IndexProgramUID is the field index of BpfNodeStates by the uids of the
// BpfPrograms they report, so a reconcile reads only the states that matter.
const IndexProgramUID = "status.programs.uid"

// NodeStateProgramUIDs returns the distinct BpfProgram uids a BpfNodeState
// reports; it is the IndexProgramUID extractor.
func NodeStateProgramUIDs(obj client.Object) []string {
	s, ok := obj.(*v1alpha1.BpfNodeState)
	if !ok {
		return nil
	}
	var uids []string
	seen := map[types.UID]bool{}
	for _, e := range s.Status.Programs {
		if !seen[e.UID] {
			seen[e.UID] = true
			uids = append(uids, string(e.UID))
		}
	}
	return uids
}

// SetupWithManager registers the index and the watches: a BpfNodeState event
// wakes only the BpfPrograms it reports, a Node label change only the
// BpfPrograms whose selector matches, a trust policy change only the
// BpfPrograms it covers.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.BpfNodeState{}, IndexProgramUID, NodeStateProgramUIDs); err != nil {
		return fmt.Errorf("index node states by program uid: %w", err)
	}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("bpfprogram").
		// One worker per program at a time (the work queue guarantees it);
		// several programs reconcile side by side.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		For(&v1alpha1.BpfProgram{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1alpha1.BpfNodeState{}, r.nodeStateHandler()).
		Watches(&corev1.Node{}, r.nodeHandler()).
		Watches(&v1alpha1.BundleTrustPolicy{}, handler.EnqueueRequestsFromMapFunc(r.policyPrograms)).
		// A target deleted by someone else is written again; the
		// operator's own target writes wake nothing.
		Owns(&v1alpha1.BpfProgramTarget{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return false },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build bpfprogram controller: %w", err)
	}
	return nil
}

// nodeStateHandler enqueues, NodeStateDelay after a BpfNodeState changes,
// the BpfPrograms it reports (before and after the change). A program
// already waiting is not queued twice, so a burst of node reports costs one
// reconcile per program.
func (r *Reconciler) nodeStateHandler() handler.EventHandler {
	delay := r.NodeStateDelay
	if delay == 0 {
		delay = DefaultNodeStateDelay
	}
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		seen := map[reconcile.Request]bool{}
		for _, obj := range objs {
			for _, req := range r.nodeStatePrograms(ctx, obj) {
				if seen[req] {
					continue
				}
				seen[req] = true
				if delay > 0 {
					q.AddAfter(req, delay)
				} else {
					q.Add(req)
				}
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			old, okOld := e.ObjectOld.(*v1alpha1.BpfNodeState)
			cur, okNew := e.ObjectNew.(*v1alpha1.BpfNodeState)
			if !okOld || !okNew {
				enqueue(ctx, q, e.ObjectOld, e.ObjectNew)
				return
			}
			seen := map[reconcile.Request]bool{}
			for _, req := range changedNodeStatePrograms(old, cur) {
				if !seen[req] {
					seen[req] = true
					if delay > 0 {
						q.AddAfter(req, delay)
					} else {
						q.Add(req)
					}
				}
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
	}
}

// nodeStatePrograms maps a BpfNodeState to the BpfPrograms it reports.
func (r *Reconciler) nodeStatePrograms(_ context.Context, obj client.Object) []reconcile.Request {
	s, ok := obj.(*v1alpha1.BpfNodeState)
	if !ok {
		return nil
	}
	return programsOf(s)
}

// changedNodeStatePrograms maps an update of a BpfNodeState to the
// BpfPrograms whose rows in it changed (added, removed or edited). With a
// hundred programs on a node, a write that moves one of them wakes that one
// rather than all hundred, so the operator does one program's work per
// node write instead of P (P × N per fleet-wide round). A change outside
// the rows (kernel, conditions, the node's summary) may change how every
// program it runs is counted (kernel compatibility, readiness), so it maps
// to all of them, before and after.
func changedNodeStatePrograms(old, cur *v1alpha1.BpfNodeState) []reconcile.Request {
	oldRest, curRest := old.Status, cur.Status
	oldRest.Programs, curRest.Programs = nil, nil
	oldRest.Summary, curRest.Summary = v1alpha1.NodeSummary{}, v1alpha1.NodeSummary{}
	oldRest.StatsAt, curRest.StatsAt = nil, nil
	if !equality.Semantic.DeepEqual(oldRest, curRest) || !equality.Semantic.DeepEqual(old.Labels, cur.Labels) {
		return append(programsOf(old), programsOf(cur)...)
	}
	rows := func(s *v1alpha1.BpfNodeState) map[string][]v1alpha1.ProgramState {
		out := map[string][]v1alpha1.ProgramState{}
		for _, e := range s.Status.Programs {
			// The operator's cache trims rows (operator.TrimNodeState):
			// a stats refresh leaves them equal and wakes nothing.
			out[e.BpfProgram] = append(out[e.BpfProgram], e)
		}
		return out
	}
	before, after := rows(old), rows(cur)
	var reqs []reconcile.Request
	for name, a := range after {
		if b, ok := before[name]; !ok || !equality.Semantic.DeepEqual(a, b) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
		}
	}
	return reqs
}

func programsOf(s *v1alpha1.BpfNodeState) []reconcile.Request {
	var reqs []reconcile.Request
	seen := map[string]bool{}
	for _, e := range s.Status.Programs {
		if e.BpfProgram != "" && !seen[e.BpfProgram] {
			seen[e.BpfProgram] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: e.BpfProgram}})
		}
	}
	return reqs
}

// nodeHandler enqueues, on a Node's creation, deletion, label or readiness
// change, the BpfPrograms whose selector matches its old or new labels.
// Status heartbeats change neither and enqueue nothing.
func (r *Reconciler) nodeHandler() handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], sets ...labels.Set) {
		for _, req := range r.programsSelecting(ctx, sets...) {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object.GetLabels())
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if nodeChanged(e.ObjectOld, e.ObjectNew) {
				enqueue(ctx, q, e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object.GetLabels())
		},
	}
}

// nodeChanged tells whether a Node update can change which programs select
// it or how it counts: its labels changed, its deletion began, or it became
// ready or not ready.
func nodeChanged(old, new client.Object) bool {
	if !labels.Equals(old.GetLabels(), new.GetLabels()) ||
		old.GetDeletionTimestamp().IsZero() != new.GetDeletionTimestamp().IsZero() {
		return true
	}
	on, ok1 := old.(*corev1.Node)
	nn, ok2 := new.(*corev1.Node)
	return ok1 && ok2 && NodeNotReady(on) != NodeNotReady(nn)
}

// programsSelecting returns the BpfPrograms whose nodeSelector matches one of sets.
func (r *Reconciler) programsSelecting(ctx context.Context, sets ...labels.Set) []reconcile.Request {
	var list v1alpha1.BpfProgramList
	if err := r.Client.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "list BpfPrograms for a node event")
		return nil
	}
	return selecting(list.Items, sets...)
}

// selecting returns the programs whose nodeSelector matches one of sets.
func selecting(programs []v1alpha1.BpfProgram, sets ...labels.Set) []reconcile.Request {
	var reqs []reconcile.Request
	for _, p := range programs {
		sel := labels.Everything()
		if p.Spec.NodeSelector != nil {
			var err error
			if sel, err = metav1.LabelSelectorAsSelector(p.Spec.NodeSelector); err != nil {
				continue
			}
		}
		for _, set := range sets {
			if sel.Matches(set) {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
				break
			}
		}
	}
	return reqs
}

// policyPrograms maps a trust policy to the BpfPrograms whose image it covers.
func (r *Reconciler) policyPrograms(ctx context.Context, obj client.Object) []reconcile.Request {
	pol, ok := obj.(*v1alpha1.BundleTrustPolicy)
	if !ok {
		return nil
	}
	var list v1alpha1.BpfProgramList
	if err := r.Client.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "list BpfPrograms for a trust policy event")
		return nil
	}
	var reqs []reconcile.Request
	for _, p := range list.Items {
		ref, err := remote.ParseReference(p.Spec.Bundle.Image)
		if err == nil && trust.Covers(*pol, ref.Repository) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
		}
	}
	return reqs
}
