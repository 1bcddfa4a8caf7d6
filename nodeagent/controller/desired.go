package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/remote"
)

// errWaitingForDigest holds a selected program the operator has not given a
// digest for this node yet (tag not resolved, not verified, or waiting for
// its wave).
var errWaitingForDigest = errors.New("waiting for the operator to roll a verified digest out to this node")

// errWaitingForTarget holds a program that runs here and still exists but
// has no BpfProgramTarget: the node keeps what runs until the operator
// writes one (or the program is deleted).
var errWaitingForTarget = errors.New("the BpfProgram exists but has no BpfProgramTarget; keeping what runs until the operator writes one")

// errTenancyViolation: a BpfPodProgram's program names something outside
// its namespace's pods; the agent attaches nothing of it.
var errTenancyViolation = errors.New("a BpfPodProgram may only attach to pods of its own namespace")

// errNotPinned holds a program whose spec.bundle.image pins a digest while
// status.rollout gives this node another one.
var errNotPinned = errors.New("spec.bundle.image pins another digest")

// checkPinned refuses digest when p's image is pinned with @sha256: to a
// different one. Status is writable by more hands than the spec (any holder
// of bpfprograms/status): a pinned spec is binding, so a forged rollout
// cannot roll nodes to another signed release, old or new.
func checkPinned(p *v1alpha1.BpfProgram, digest string) error {
	ref, err := remote.ParseReference(p.Spec.Bundle.Image)
	if err != nil || ref.Digest == "" || ref.Digest == digest {
		return nil
	}
	return fmt.Errorf("%w: status.rollout gives this node %s, the spec pins %s; keeping what runs", errNotPinned, digest, ref.Digest)
}

// errInvalidNodeSelector holds a program whose nodeSelector cannot be
// evaluated: the node cannot tell whether it is selected, so it keeps what
// runs rather than detach it (as every node would, fleet-wide).
var errInvalidNodeSelector = errors.New("nodeSelector cannot be evaluated; keeping what runs")

// selected returns the BpfPrograms whose nodeSelector matches node, sorted
// by name. Programs being deleted are left out: absence detaches them.
//
// A program whose selector cannot be evaluated is kept when onNode says
// something of it is on the node, and held (held names it, with the
// reason); otherwise it is left out. Either way the error is returned.
func selected(programs []v1alpha1.BpfProgram, node *corev1.Node, onNode func(types.UID) bool) (out []*v1alpha1.BpfProgram, held map[types.UID]error, err error) {
	var errs []error
	for i := range programs {
		p := &programs[i]
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		ok, err := selects(p.Spec.NodeSelector, node.Labels)
		if err != nil {
			err = fmt.Errorf("evaluate nodeSelector of BpfProgram %s: %w: %w", p.Name, errInvalidNodeSelector, err)
			errs = append(errs, err)
			if onNode != nil && onNode(p.UID) {
				if held == nil {
					held = map[types.UID]error{}
				}
				held[p.UID] = err
				out = append(out, p)
			}
			continue
		}
		if ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.BpfProgram) int { return strings.Compare(a.Name, b.Name) })
	return out, held, errors.Join(errs...)
}

// selects tells whether sel matches a node with nodeLabels; nil or empty
// selects every node.
func selects(sel *metav1.LabelSelector, nodeLabels map[string]string) (bool, error) {
	if sel == nil {
		return true, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, fmt.Errorf("parse label selector: %w", err)
	}
	return s.Matches(labels.Set(nodeLabels)), nil
}

// digestFor is the digest this node must run for p now; "" while there is
// none. The node's own kernel release (from the dataplane, as reported in
// BpfNodeState.status.kernel) takes part: while a rollout is in progress, a
// release on which the target digest failed somewhere in the fleet
// (status.rollout.pausedKernels) keeps the stable digest here too.
func (r *Reconciler) digestFor(p *v1alpha1.BpfProgram) string {
	return rollout.DigestForNodeKernel(p, r.NodeName, r.Dataplane.Kernel().Release)
}

// holdReason maps a Desired.Hold error to the ProgramState reason that
// explains it.
func holdReason(err error) string {
	switch {
	case errors.Is(err, errWaitingForDigest):
		return v1alpha1.ReasonWaitingForWave
	case errors.Is(err, errWaitingForTarget):
		return v1alpha1.ReasonWaitingForTarget
	case errors.Is(err, errNotPinned):
		return v1alpha1.ReasonDigestNotPinned
	case errors.Is(err, bundles.ErrKeyUnavailable):
		// Before the refusals it is joined with: a key not read is no verdict.
		return v1alpha1.ReasonKeyUnavailable
	case errors.Is(err, errInvalidNodeSelector):
		return v1alpha1.ReasonInvalidNodeSelector
	case errors.Is(err, errTenancyViolation):
		return v1alpha1.ReasonTenancyViolation
	case errors.Is(err, bundles.ErrUnsigned),
		errors.Is(err, bundles.ErrSignatureMismatch),
		errors.Is(err, bundles.ErrNoTrustPolicy),
		errors.Is(err, bundles.ErrProgramTypeDenied),
		errors.Is(err, bundles.ErrAttachTypeDenied):
		return v1alpha1.ReasonVerifyFailed
	default:
		return v1alpha1.ReasonPullFailed
	}
}

// transientHold tells whether retrying soon may clear a hold: the registry
// was unreachable or a trust key could not be read, as opposed to a bundle
// that will never verify.
func transientHold(err error) bool {
	r := holdReason(err)
	return r == v1alpha1.ReasonPullFailed || r == v1alpha1.ReasonKeyUnavailable
}

// policyKey identifies the trust policies' content for the verification memo:
// a changed policy (new key, removed image glob) forces a new verification.
func policyKey(policies []v1alpha1.BundleTrustPolicy) string {
	keys := make([]string, 0, len(policies))
	for _, p := range policies {
		keys = append(keys, fmt.Sprintf("%s/%s/%d", p.Name, p.UID, p.Generation))
	}
	slices.Sort(keys)
	return fmt.Sprint(keys)
}
