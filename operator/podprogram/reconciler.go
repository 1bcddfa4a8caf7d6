// Package podprogram keeps one BpfProgram for each BpfPodProgram, the
// namespaced kind application teams use, and copies that program's status
// back. The BpfProgram carries spec.tenant, which confines it to the
// namespace's pods on every agent and to the trust policies that select the
// namespace; the rest of the pipeline (resolve, verify, roll out, attach,
// sum) is the one cluster programs use.
package podprogram

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Finalizer holds a BpfPodProgram until its BpfProgram is gone, so its
// programs are detached before the object that asked for them disappears.
const Finalizer = "bpfleet.io/bpfpodprogram"

// ProgramName is the name of the BpfProgram kept for the BpfPodProgram
// namespace/name. Namespace names hold no dots, so the name is unique.
func ProgramName(namespace, name string) string { return namespace + "." + name }

// Reconciler keeps BpfPodPrograms and their BpfPrograms in step.
type Reconciler struct {
	Client client.Client
}

// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfpodprograms,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfpodprograms/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfpodprograms/finalizers,verbs=update
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfprograms,verbs=get;list;watch;create;update;patch;delete

// SetupWithManager watches BpfPodPrograms and the BpfPrograms kept for them.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("bpfpodprogram").
		For(&v1alpha1.BpfPodProgram{}).
		Watches(&v1alpha1.BpfProgram{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			p, ok := o.(*v1alpha1.BpfProgram)
			if !ok || p.Spec.Tenant == nil {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: p.Spec.Tenant.Namespace, Name: p.Spec.Tenant.Name}}}
		})).
		Complete(r)
}

// Reconcile makes the BpfProgram of one BpfPodProgram match it, or removes
// it, and mirrors its status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pp := &v1alpha1.BpfPodProgram{}
	if err := r.Client.Get(ctx, req.NamespacedName, pp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	prog, err := r.kept(ctx, pp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !pp.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.release(ctx, pp, prog)
	}
	if !controllerutil.ContainsFinalizer(pp, Finalizer) {
		controllerutil.AddFinalizer(pp, Finalizer)
		if err := r.Client.Update(ctx, pp); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer to %s: %w", req, err)
		}
	}
	before := pp.Status.DeepCopy()
	if v := v1alpha1.TenantViolations(&pp.Spec); len(v) > 0 {
		// Written around admission (an older CRD, or its rules lifted):
		// keep no program for it at all.
		if err := r.deleteKept(ctx, prog); err != nil {
			return ctrl.Result{}, err
		}
		refuse(pp, v1alpha1.ReasonTenancyViolation, strings.Join(v, "; "))
		return ctrl.Result{}, r.writeStatus(ctx, pp, before)
	}
	if prog != nil && !keptFor(prog, pp) {
		refuse(pp, v1alpha1.ReasonNameTaken, fmt.Sprintf("BpfProgram %s exists and was not made for this BpfPodProgram", prog.Name))
		return ctrl.Result{}, r.writeStatus(ctx, pp, before)
	}
	prog, err = r.apply(ctx, pp, prog)
	if err != nil {
		return ctrl.Result{}, err
	}
	mirror(pp, prog)
	return ctrl.Result{}, r.writeStatus(ctx, pp, before)
}

// kept returns the BpfProgram named for pp, whoever made it, or nil.
func (r *Reconciler) kept(ctx context.Context, pp *v1alpha1.BpfPodProgram) (*v1alpha1.BpfProgram, error) {
	prog := &v1alpha1.BpfProgram{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: ProgramName(pp.Namespace, pp.Name)}, prog)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get BpfProgram of %s/%s: %w", pp.Namespace, pp.Name, err)
	}
	return prog, nil
}

// keptFor tells whether prog was made for pp.
func keptFor(prog *v1alpha1.BpfProgram, pp *v1alpha1.BpfPodProgram) bool {
	t := prog.Spec.Tenant
	return t != nil && t.Namespace == pp.Namespace && t.Name == pp.Name
}

// desiredSpec is pp's spec with the tenant set.
func desiredSpec(pp *v1alpha1.BpfPodProgram) v1alpha1.BpfProgramSpec {
	spec := *pp.Spec.DeepCopy()
	spec.Tenant = &v1alpha1.Tenant{Namespace: pp.Namespace, Name: pp.Name}
	return spec
}

// apply creates or updates the BpfProgram kept for pp.
func (r *Reconciler) apply(ctx context.Context, pp *v1alpha1.BpfPodProgram, prog *v1alpha1.BpfProgram) (*v1alpha1.BpfProgram, error) {
	spec := desiredSpec(pp)
	if prog == nil {
		prog = &v1alpha1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: ProgramName(pp.Namespace, pp.Name)}, Spec: spec}
		if err := r.Client.Create(ctx, prog); err != nil {
			return nil, fmt.Errorf("create BpfProgram %s: %w", prog.Name, err)
		}
		return prog, nil
	}
	if equality.Semantic.DeepEqual(prog.Spec, spec) {
		return prog, nil
	}
	prog.Spec = spec
	if err := r.Client.Update(ctx, prog); err != nil {
		return nil, fmt.Errorf("update BpfProgram %s: %w", prog.Name, err)
	}
	return prog, nil
}

// deleteKept deletes prog when it was made for a BpfPodProgram.
func (r *Reconciler) deleteKept(ctx context.Context, prog *v1alpha1.BpfProgram) error {
	if prog == nil || prog.Spec.Tenant == nil || !prog.DeletionTimestamp.IsZero() {
		return nil
	}
	if err := r.Client.Delete(ctx, prog); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete BpfProgram %s: %w", prog.Name, err)
	}
	return nil
}

// release deletes pp's BpfProgram and lets pp go once it is gone (its own
// deletion may wait for nodes to detach; its removal wakes this reconcile).
func (r *Reconciler) release(ctx context.Context, pp *v1alpha1.BpfPodProgram, prog *v1alpha1.BpfProgram) error {
	if prog != nil && keptFor(prog, pp) {
		return r.deleteKept(ctx, prog)
	}
	if !controllerutil.ContainsFinalizer(pp, Finalizer) {
		return nil
	}
	controllerutil.RemoveFinalizer(pp, Finalizer)
	if err := r.Client.Update(ctx, pp); err != nil {
		return fmt.Errorf("remove finalizer of %s/%s: %w", pp.Namespace, pp.Name, err)
	}
	return nil
}

// refuse marks pp not accepted, with nothing running for it.
func refuse(pp *v1alpha1.BpfPodProgram, reason, message string) {
	pp.Status = v1alpha1.BpfProgramStatus{ObservedGeneration: pp.Generation, Conditions: pp.Status.Conditions}
	for _, t := range []string{v1alpha1.ConditionAccepted, v1alpha1.ConditionReady} {
		meta.SetStatusCondition(&pp.Status.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: reason, Message: message, ObservedGeneration: pp.Generation})
	}
	for _, t := range []string{v1alpha1.ConditionBundleResolved, v1alpha1.ConditionSignatureVerified, v1alpha1.ConditionRolledOut, v1alpha1.ConditionDegraded} {
		meta.RemoveStatusCondition(&pp.Status.Conditions, t)
	}
}

// mirror copies prog's status onto pp, with Accepted. Conditions keep
// their transition times when nothing changed, and describe pp's
// generation once prog has caught up with the spec copied from it.
func mirror(pp *v1alpha1.BpfPodProgram, prog *v1alpha1.BpfProgram) {
	conditions := pp.Status.Conditions
	pp.Status = *prog.Status.DeepCopy()
	pp.Status.Conditions = conditions
	current := prog.Status.ObservedGeneration == prog.Generation
	if current {
		pp.Status.ObservedGeneration = pp.Generation
	} else {
		pp.Status.ObservedGeneration = 0
	}
	for _, t := range []string{v1alpha1.ConditionBundleResolved, v1alpha1.ConditionSignatureVerified, v1alpha1.ConditionRolledOut, v1alpha1.ConditionReady, v1alpha1.ConditionDegraded} {
		c := meta.FindStatusCondition(prog.Status.Conditions, t)
		if c == nil {
			meta.RemoveStatusCondition(&pp.Status.Conditions, t)
			continue
		}
		mc := *c
		mc.ObservedGeneration = pp.Status.ObservedGeneration
		meta.SetStatusCondition(&pp.Status.Conditions, mc)
	}
	meta.SetStatusCondition(&pp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAccepted,
		Message: "BpfProgram " + prog.Name + " runs it", ObservedGeneration: pp.Generation})
}

// writeStatus writes pp's status when it changed.
func (r *Reconciler) writeStatus(ctx context.Context, pp *v1alpha1.BpfPodProgram, before *v1alpha1.BpfProgramStatus) error {
	if equality.Semantic.DeepEqual(before, &pp.Status) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, pp); err != nil {
		return fmt.Errorf("write status of %s/%s: %w", pp.Namespace, pp.Name, err)
	}
	return nil
}
