package program

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// The agents' input. Agents watch BpfProgramTargets, not BpfPrograms: the
// operator patches a BpfProgram's status for progress (node counts,
// conditions) many times per rollout, and every patch would reach every
// agent's watch. A target holds only what agents read (rollout.TargetOf)
// and is written only when that changes, before the status, so that agents
// see a decision as soon as it is made. It is named after its BpfProgram
// and owned by it (garbage collection removes a target whose program is
// gone); the operator deletes it itself when the program is deleted, so
// that agents detach while the finalizer waits for them.

// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfprogramtargets,verbs=get;list;watch;create;patch;delete

// WriteTarget makes p's BpfProgramTarget hold rollout.TargetOf(p), and
// writes nothing when the stored target (as c reads it) already does. It
// tells whether it wrote.
func WriteTarget(ctx context.Context, c client.Client, p *v1alpha1.BpfProgram) (bool, error) {
	want := rollout.TargetOf(p)
	owners := []metav1.OwnerReference{{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "BpfProgram",
		Name: p.Name, UID: p.UID, Controller: ptr.To(true),
	}}
	cur := &v1alpha1.BpfProgramTarget{}
	err := c.Get(ctx, client.ObjectKey{Name: p.Name}, cur)
	switch {
	case apierrors.IsNotFound(err):
		t := &v1alpha1.BpfProgramTarget{ObjectMeta: metav1.ObjectMeta{Name: p.Name, OwnerReferences: owners}, Spec: want}
		if err := c.Create(ctx, t); err != nil {
			return false, fmt.Errorf("create BpfProgramTarget %s: %w", p.Name, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("get BpfProgramTarget %s: %w", p.Name, err)
	}
	if equality.Semantic.DeepEqual(cur.Spec, want) && equality.Semantic.DeepEqual(cur.OwnerReferences, owners) {
		return false, nil
	}
	next := cur.DeepCopy()
	next.Spec, next.OwnerReferences = want, owners
	// No resourceVersion precondition: the patch sets the whole spec, so a
	// cache that lags an earlier write costs a no-op patch (which the API
	// server neither stores nor sends to watches), not a conflict.
	if err := c.Patch(ctx, next, client.MergeFrom(cur)); err != nil {
		return false, fmt.Errorf("patch BpfProgramTarget %s: %w", p.Name, err)
	}
	return true, nil
}

// DeleteTarget deletes the BpfProgramTarget named name, if c still sees
// one: agents then detach the program.
func DeleteTarget(ctx context.Context, c client.Client, name string) error {
	t := &v1alpha1.BpfProgramTarget{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, t); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("get BpfProgramTarget %s: %w", name, err))
	}
	if err := c.Delete(ctx, t); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("delete BpfProgramTarget %s: %w", name, err))
	}
	return nil
}
