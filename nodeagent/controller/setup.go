package controller

import (
	"context"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// CacheOptions scope a manager's cache to what node needs: its own Node and
// BpfNodeState (by name), and every BpfProgramTarget and BundleTrustPolicy.
func CacheOptions(node string) cache.Options {
	byName := fields.OneTermEqualSelector("metadata.name", node)
	return cache.Options{
		// The agent never reads managedFields: without them every read
		// deep-copies less, and each node caches less.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Node{}:           {Field: byName},
			&v1alpha1.BpfNodeState{}: {Field: byName},
			// The node's own pods, for the identity of event records; an
			// informer starts on the first read only.
			&corev1.Pod{}: {Field: fields.OneTermEqualSelector("spec.nodeName", node)},
		},
	}
}

// Triggers say what else than API changes makes the node reconcile.
type Triggers struct {
	// ResyncInterval reconciles periodically (drift healing, interfaces);
	// zero means 30s.
	ResyncInterval time.Duration
	// StatsInterval refreshes run-time statistics in status; zero never does.
	StatsInterval time.Duration
}

// SetupWithManager registers the reconciler: every event maps to the one
// node key. The manager's cache must be scoped with CacheOptions.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager) error {
	if r.NodeName == "" {
		return errNoNode
	}
	t := r.Triggers
	if t.ResyncInterval <= 0 {
		t.ResyncInterval = 30 * time.Second
	}
	key := reconcile.Request{NamespacedName: types.NamespacedName{Name: r.NodeName}}
	toNode := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{key}
	})
	ticks := make(chan event.GenericEvent, 2)
	if err := mgr.Add(&ticker{
		out:      ticks,
		interval: t.ResyncInterval,
		changes:  r.Dataplane.Changes(),
		stats:    t.StatsInterval,
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("bpfnodeagent").
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 1,
			// Several agents may share a process (bpfleet local, e2e).
			SkipNameValidation: ptr.To(true),
		}).
		Watches(&corev1.Node{}, toNode, builder.WithPredicates(predicate.Or[client.Object](
			predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{}))).
		Watches(&v1alpha1.BpfProgramTarget{}, toNode, builder.WithPredicates(r.programChanged())).
		Watches(&v1alpha1.BundleTrustPolicy{}, toNode, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Pod{}, toNode, builder.WithPredicates(r.podChanged())).
		Watches(&v1alpha1.BpfNodeState{}, toNode).
		WatchesRawSource(source.Channel(ticks, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				if o.GetNamespace() == statsRefreshNamespace {
					return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: statsRefreshNamespace, Name: r.NodeName}}}
				}
				return []reconcile.Request{key}
			}))).
		Complete(r)
}

// podChanged passes the events of this node's pods that can change what a
// pod target selects or where it attaches (a pod appears, goes, is
// relabelled, or a container starts or stops), and only while some program
// targets pods.
func (r *Reconciler) podChanged() predicate.Predicate {
	targeted := func() bool {
		programs, err := listPrograms(context.Background(), r.Client)
		if err != nil {
			return true
		}
		return hasPodTargets(programs)
	}
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return targeted() },
		DeleteFunc:  func(event.DeleteEvent) bool { return targeted() },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Pod)
			n, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 {
				return true
			}
			return (!maps.Equal(o.Labels, n.Labels) || o.Status.Phase != n.Status.Phase ||
				runningContainers(o) != runningContainers(n) || o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()) && targeted()
		},
	}
}

// runningContainers names a pod's running containers and their ids.
func runningContainers(p *corev1.Pod) string {
	var b strings.Builder
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil {
			b.WriteString(cs.Name + "=" + cs.ContainerID + ";")
		}
	}
	return b.String()
}

// programChanged passes BpfProgramTarget events that can change this
// node's desired set: creation, deletion, a new program or generation, or
// another digest for this node. A wave that moves other nodes does not.
func (r *Reconciler) programChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			ot, ok1 := e.ObjectOld.(*v1alpha1.BpfProgramTarget)
			nt, ok2 := e.ObjectNew.(*v1alpha1.BpfProgramTarget)
			if !ok1 || !ok2 {
				return true
			}
			o, n := rollout.ProgramOf(ot), rollout.ProgramOf(nt)
			return o.UID != n.UID || o.Generation != n.Generation ||
				!nt.DeletionTimestamp.IsZero() ||
				r.digestFor(&o) != r.digestFor(&n)
		},
	}
}

// ticker turns the resync interval, the stats interval and the dataplane's
// interface changes into generic events. An event in statsRefreshNamespace
// asks for a statistics refresh.
type ticker struct {
	out      chan<- event.GenericEvent
	interval time.Duration
	stats    time.Duration
	changes  <-chan struct{}
}

func (t *ticker) Start(ctx context.Context) error {
	resync := time.NewTicker(t.interval)
	defer resync.Stop()
	var statsC <-chan time.Time
	if t.stats > 0 {
		s := time.NewTicker(t.stats)
		defer s.Stop()
		statsC = s.C
	}
	send := func(ns string) {
		select {
		case t.out <- event.GenericEvent{Object: &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Namespace: ns}}}:
		default: // a reconcile is already queued
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync.C:
			send("")
		case <-statsC:
			send(statsRefreshNamespace)
		case <-t.changes:
			send("")
		}
	}
}

var _ manager.Runnable = (*ticker)(nil)
