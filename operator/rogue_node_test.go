package operator_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/rollout"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestOneRogueNodeCannotHaltARollout: one node's BpfNodeState is forged (a
// broken or compromised agent writes it): it fails the new digest, each
// time claiming another, made-up kernel release. Before, every new release
// it named was paused, and every paused release after the first counted as
// one more failed node, so one node halted any rollout whatever
// maxFailedNodes allowed. Now a node pauses at most one release (the one
// it named first) and counts once toward maxFailedNodes: with
// maxFailedNodes 1 the honest nodes go on to the new digest.
func TestOneRogueNodeCannotHaltARollout(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref1, d1 := testbundle.Push(t, reg, "ebpf/rogue", "v1", testbundle.Source{})
	sign(t, ref1, priv)
	ref2, d2 := testbundle.Push(t, reg, "ebpf/rogue", "v2", testbundle.Source{Return: 1})
	sign(t, ref2, priv)
	trustPolicy(t, "rogue", reg, pub)
	const kernel = "6.18.0"
	names := nodes(t, "rogue", 6)
	rogue, honest := names[0], names[1:]
	program(t, "rogue", ref1, "rogue", func(p *v1.BpfProgram) {
		p.Spec.Rollout = v1.RolloutSpec{MaxFailedNodes: 1}
	})
	p := waitCondition(t, "rogue", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	for _, n := range names {
		report(t, p, n, kernel, d1, v1.PhaseAttached)
	}
	waitCondition(t, "rogue", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

	mutate(t, "rogue", func(q *v1.BpfProgram) { q.Spec.Bundle.Image = ref2 })
	envtest.Eventually(t, 30*time.Second, func() error {
		if r := get(t, "rogue").Status.Rollout; r == nil || r.TargetDigest != d2 {
			return fmt.Errorf("rollout %+v, want target %s", r, d2)
		}
		return nil
	})

	// The rogue fails d2 on release after made-up release; each report is
	// waited for in status.kernels (or a halt) before the next.
	for _, release := range []string{"fake-1", "fake-2", "fake-3", "fake-4"} {
		report(t, get(t, "rogue"), rogue, release, d2, v1.PhaseFailed)
		envtest.Eventually(t, 30*time.Second, func() error {
			q := get(t, "rogue")
			if r := q.Status.Rollout; r != nil && r.HaltedReason != "" {
				return nil
			}
			for _, k := range q.Status.Kernels {
				if k.Release == release && (k.Failed == 1 || k.FirstFailure != "") {
					return nil
				}
			}
			return fmt.Errorf("kernels %+v: the report on %s not seen yet", q.Status.Kernels, release)
		})
	}
	if r := get(t, "rogue").Status.Rollout; r.HaltedReason != "" {
		t.Fatalf("one node halted the rollout: %s (paused %+v)", r.HaltedReason, r.PausedKernels)
	}

	// The honest nodes run what they are told to and attach d2.
	var p2 *v1.BpfProgram
	envtest.Eventually(t, 60*time.Second, func() error {
		p2 = get(t, "rogue")
		for _, n := range honest {
			if d := rollout.DigestForNodeKernel(p2, n, kernel); d != d2 {
				return fmt.Errorf("node %s told to run %s, want %s (rollout %+v)", n, d, d2, p2.Status.Rollout)
			}
		}
		return nil
	})
	for _, n := range honest {
		report(t, p2, n, kernel, d2, v1.PhaseAttached)
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		p2 = get(t, "rogue")
		c := meta.FindStatusCondition(p2.Status.Conditions, v1.ConditionRolledOut)
		if c == nil || c.Reason != v1.ReasonKernelsPaused {
			return fmt.Errorf("RolledOut %+v, rollout %+v: want every wave done, the rogue's release paused", c, p2.Status.Rollout)
		}
		return nil
	})
	r := p2.Status.Rollout
	if r.HaltedReason != "" || r.UpdatedNodes != int32(len(honest)) {
		t.Errorf("rollout %+v: want %d nodes on %s, not halted", r, len(honest), d2)
	}
	if len(r.PausedKernels) != 1 || r.PausedKernels[0].Node != rogue || r.PausedKernels[0].Release != "fake-1" {
		t.Errorf("paused kernels %+v: want only the release the rogue named first", r.PausedKernels)
	}
	if !slices.Equal(r.FailedNodes, []string{rogue}) {
		t.Errorf("failed nodes %v, want the rogue once", r.FailedNodes)
	}
	if got := rollout.DigestForNodeKernel(p2, honest[0], kernel); got != d2 {
		t.Errorf("an honest node is told to run %s, want %s", got, d2)
	}
}
