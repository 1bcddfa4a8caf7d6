// Package trustpolicy reconciles BundleTrustPolicies: it parses their keys
// (inline PEM or a Secret), reports fingerprints, the keys it had to skip
// and how many BpfPrograms each covers, and warns loudly when a policy
// admits unsigned bundles.
package trustpolicy

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// keyRetry is how soon a policy whose Secret could not be read for an API
// error (Forbidden included: the trust-keys Role update usually lands
// within a second) is reconciled again.
const keyRetry = 3 * time.Second

// Reconciler reconciles BundleTrustPolicies.
type Reconciler struct {
	// Client reads through the manager's cache and writes to the API server.
	Client client.Client
	// Keys reads a key a TrustedKey.SecretRef names; nil refuses such keys.
	Keys trust.KeySource
	// Recorder emits Events.
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=bpfleet.io,resources=bundletrustpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bundletrustpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfprograms,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile parses one policy's keys and writes its status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	pol := &v1alpha1.BundleTrustPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, pol); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := pol.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before.Status, pol.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, pol, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
			retErr = errors.Join(retErr, fmt.Errorf("patch status: %w", err))
		}
	}()

	// A key that cannot be had is skipped and reported; the others count.
	keys, keyErr := (&trust.Verifier{Keys: r.Keys}).ResolveKeys(ctx, *pol)
	pol.Status.KeyFingerprints = nil
	pol.Status.KeyCount = int32(len(keys))
	for _, k := range keys {
		pol.Status.KeyFingerprints = append(pol.Status.KeyFingerprints, k.Name+" "+k.Fingerprint)
	}
	r.setReadyCondition(pol, keyErr)
	r.setUnsignedAllowedCondition(pol)

	var programs v1alpha1.BpfProgramList
	if err := r.Client.List(ctx, &programs); err != nil {
		return ctrl.Result{}, fmt.Errorf("list BpfPrograms: %w", err)
	}
	pol.Status.CoveredPrograms = 0
	for _, p := range programs.Items {
		if ref, err := remote.ParseReference(p.Spec.Bundle.Image); err == nil && trust.Covers(*pol, ref.Repository) {
			pol.Status.CoveredPrograms++
		}
	}
	pol.Status.ObservedGeneration = pol.Generation
	if keyErr != nil {
		if errors.Is(keyErr, bundles.ErrKeyUnavailable) {
			// An API error (Forbidden until the trust-keys Role names the
			// Secret, a timeout, a 5xx): no verdict on the key, look soon.
			return ctrl.Result{RequeueAfter: keyRetry}, nil
		}
		for _, k := range pol.Spec.Keys {
			if k.SecretRef != nil {
				// Secrets are not watched: look again for a fixed one.
				return ctrl.Result{RequeueAfter: time.Minute}, nil
			}
		}
		return ctrl.Result{}, reconcile.TerminalError(keyErr)
	}
	return ctrl.Result{}, nil
}

func (r *Reconciler) setReadyCondition(pol *v1alpha1.BundleTrustPolicy, keyErr error) {
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonKeysValid,
		Message: fmt.Sprintf("%d key(s) parsed", pol.Status.KeyCount), ObservedGeneration: pol.Generation}
	if keyErr != nil {
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonKeyInvalid
		c.Message = fmt.Sprintf("%d of %d key(s) usable, the others skipped: %s", pol.Status.KeyCount, len(pol.Spec.Keys), keyErr)
		switch {
		case apierrors.IsForbidden(keyErr):
			c.Reason = v1alpha1.ReasonSecretForbidden
		case errors.Is(keyErr, bundles.ErrKeyUnavailable):
			c.Reason = v1alpha1.ReasonKeyUnavailable
		}
	}
	if meta.SetStatusCondition(&pol.Status.Conditions, c) && keyErr != nil {
		r.Recorder.Eventf(pol, nil, corev1.EventTypeWarning, c.Reason, "ParseKeys", "%s", c.Message)
	}
}

func (r *Reconciler) setUnsignedAllowedCondition(pol *v1alpha1.BundleTrustPolicy) {
	if !pol.Spec.AllowUnsigned {
		meta.RemoveStatusCondition(&pol.Status.Conditions, v1alpha1.ConditionUnsignedAllowed)
		return
	}
	c := metav1.Condition{Type: v1alpha1.ConditionUnsignedAllowed, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonUnsignedAllowed,
		Message: "this policy admits UNSIGNED bundles for its images: for development only", ObservedGeneration: pol.Generation}
	if old := meta.FindStatusCondition(pol.Status.Conditions, c.Type); old == nil || old.Status != c.Status {
		r.Recorder.Eventf(pol, nil, corev1.EventTypeWarning, v1alpha1.ReasonUnsignedAllowed, "ParseKeys", "%s", c.Message)
	}
	meta.SetStatusCondition(&pol.Status.Conditions, c)
}

// SetupWithManager watches policies, and BpfPrograms to keep coveredPrograms
// current.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager) error {
	err := ctrl.NewControllerManagedBy(mgr).
		Named("bundletrustpolicy").
		For(&v1alpha1.BundleTrustPolicy{}).
		Watches(&v1alpha1.BpfProgram{}, handler.EnqueueRequestsFromMapFunc(r.programPolicies),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build bundletrustpolicy controller: %w", err)
	}
	return nil
}

// programPolicies maps a BpfProgram to the policies covering its image.
func (r *Reconciler) programPolicies(ctx context.Context, obj client.Object) []reconcile.Request {
	p, ok := obj.(*v1alpha1.BpfProgram)
	if !ok {
		return nil
	}
	ref, err := remote.ParseReference(p.Spec.Bundle.Image)
	if err != nil {
		return nil
	}
	var list v1alpha1.BundleTrustPolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, pol := range list.Items {
		if trust.Covers(pol, ref.Repository) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: pol.Name}})
		}
	}
	return reqs
}
