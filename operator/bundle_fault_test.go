package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestBundleInvalidHaltsAtTheFirstNode: the operator reads no ELF layer, so
// a signed manifest that misstates its ELF (a program type the policies
// allow over one they would not) is caught by the first agent, which
// refuses it with BundleInvalid. That one report halts the rollout and
// rolls every node back to the stable digest, although maxFailedNodes
// allows three failed nodes: every node would refuse the same bytes.
func TestBundleInvalidHaltsAtTheFirstNode(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref1, d1 := testbundle.Push(t, reg, "ebpf/lying", "v1", testbundle.Source{})
	sign(t, ref1, priv)
	ref2, d2 := testbundle.Push(t, reg, "ebpf/lying", "v2", testbundle.Source{Return: 1})
	sign(t, ref2, priv)
	trustPolicy(t, "lying", reg, pub)
	names := nodes(t, "lying", 6)
	program(t, "lying", ref1, "lying", func(p *v1.BpfProgram) {
		p.Spec.Rollout = v1.RolloutSpec{MaxFailedNodes: 3}
	})
	p := waitCondition(t, "lying", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	for _, n := range names {
		report(t, p, n, "6.18.0", d1, v1.PhaseAttached)
	}
	waitCondition(t, "lying", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

	mutate(t, "lying", func(q *v1.BpfProgram) { q.Spec.Bundle.Image = ref2 })
	envtest.Eventually(t, 30*time.Second, func() error {
		if r := get(t, "lying").Status.Rollout; r == nil || r.TargetDigest != d2 {
			return fmt.Errorf("rollout %+v, want target %s", r, d2)
		}
		return nil
	})
	report(t, get(t, "lying"), names[0], "6.18.0", d2, v1.PhaseFailed)
	refuseAsInvalid(t, names[0])

	halted := waitCondition(t, "lying", v1.ConditionRolledOut, metav1.ConditionFalse, v1.ReasonRolledBack)
	r := halted.Status.Rollout
	if !strings.Contains(r.HaltedReason, v1.ReasonBundleInvalid) || !strings.Contains(r.HaltedReason, names[0]) || r.StableDigest != d1 {
		t.Errorf("rollout %+v: want halted at %s naming BundleInvalid, stable %s", r, names[0], d1)
	}
	if len(r.PausedKernels) != 0 {
		t.Errorf("paused kernels %+v: a bundle fault is no kernel's", r.PausedKernels)
	}
}

// refuseAsInvalid rewrites node's failed rows as an agent refusing a
// manifest that misstates its ELF reports them.
func refuseAsInvalid(t *testing.T, node string) {
	t.Helper()
	ctx := context.Background()
	var s v1.BpfNodeState
	if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, &s); err != nil {
		t.Fatal(err)
	}
	for i := range s.Status.Programs {
		if e := &s.Status.Programs[i]; e.State == v1.PhaseFailed {
			e.Reason = v1.ReasonBundleInvalid
			e.Message = fmt.Sprintf("manifest does not match the ELF object: program %s: manifest type \"xdp\", ELF object says \"sched_cls\"", e.Program)
		}
	}
	if err := env.Client.Status().Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
}
