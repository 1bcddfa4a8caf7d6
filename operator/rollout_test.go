package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/rollout"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func TestHappyPath(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref, digest := testbundle.Push(t, reg, "ebpf/happy", "v1", testbundle.Source{})
	sign(t, ref, priv)
	trustPolicy(t, "happy", reg, pub)
	names := nodes(t, "happy", 3)
	program(t, "happy", ref, "happy")

	p := waitCondition(t, "happy", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	if p.Status.ResolvedDigest != digest || p.Status.ShortDigest != strings.TrimPrefix(digest, "sha256:")[:12] {
		t.Errorf("resolved %s (%s), want %s", p.Status.ResolvedDigest, p.Status.ShortDigest, digest)
	}
	if p.Status.ResolvedImage != reg.Repository("ebpf/happy") || p.Status.AttachTypes != "xdp,tracepoint" {
		t.Errorf("resolvedImage %q attachTypes %q", p.Status.ResolvedImage, p.Status.AttachTypes)
	}
	if !strings.Contains(p.Status.Signer, "happy") {
		t.Errorf("signer %q does not name the policy", p.Status.Signer)
	}
	waitEvent(t, "happy", v1.ReasonVerified, "")
	// The first rollout is in progress until every node reports.
	p = waitCondition(t, "happy", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonRolloutInProgress)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 3, Pending: 3, Summary: "0/3"}) {
		t.Errorf("nodes %+v before any report", p.Status.Nodes)
	}
	for _, n := range names {
		if got := rollout.DigestForNode(p, n); got != digest {
			t.Fatalf("node %s told to run %q, want %s", n, got, digest)
		}
	}

	// Agents report, one after the other; counts track them.
	report(t, p, names[0], "6.18.0", digest, v1.PhaseAttached)
	envtest.Eventually(t, 30*time.Second, func() error {
		if got := get(t, "happy").Status.Nodes.Summary; got != "1/3" {
			return fmt.Errorf("summary %q, want 1/3", got)
		}
		return nil
	})
	report(t, p, names[1], "6.18.0", digest, v1.PhaseAttached)
	report(t, p, names[2], "6.1.0", digest, v1.PhaseAttached)
	p = waitCondition(t, "happy", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 3, Attached: 3, Summary: "3/3"}) {
		t.Errorf("nodes %+v", p.Status.Nodes)
	}
	wantKernels := []v1.KernelCompatibility{{Release: "6.1.0", Attached: 1}, {Release: "6.18.0", Attached: 2}}
	if fmt.Sprint(p.Status.Kernels) != fmt.Sprint(wantKernels) {
		t.Errorf("kernels %+v, want %+v", p.Status.Kernels, wantKernels)
	}
	if !meta.IsStatusConditionTrue(p.Status.Conditions, v1.ConditionRolledOut) {
		t.Errorf("RolledOut not True: %+v", p.Status.Conditions)
	}

	// A node fails: Degraded, with the verifier's reason per kernel.
	report(t, p, names[2], "6.1.0", digest, v1.PhaseFailed)
	p = waitCondition(t, "happy", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonNodesFailed)
	if p.Status.Nodes.Failed != 1 || p.Status.Nodes.Attached != 2 {
		t.Errorf("nodes %+v", p.Status.Nodes)
	}
	if k := p.Status.Kernels[0]; k.Release != "6.1.0" || k.Failed != 1 || !strings.Contains(k.FirstFailure, v1.ReasonVerifierRejected) {
		t.Errorf("kernel 6.1.0 %+v", k)
	}
	waitEvent(t, "happy", v1.ReasonNodesFailed, names[2])
}

func TestWaves(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref1, d1 := testbundle.Push(t, reg, "ebpf/waves", "v1", testbundle.Source{})
	sign(t, ref1, priv)
	ref2, d2 := testbundle.Push(t, reg, "ebpf/waves", "v2", testbundle.Source{Return: 1})
	sign(t, ref2, priv)
	waves := []int32{10, 50, 100}
	// The program comes first, refused for want of a trust policy, so its
	// uid is known: the 20 nodes are picked to fill the waves as
	// percentages say (2, 8, 10), since a random 20 leaves wave 0 empty one
	// time in eight.
	p := program(t, "waves", ref1, "waves", func(p *v1.BpfProgram) {
		p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: waves, PauseSeconds: 600, MaxFailedNodes: 0}
	})
	waitCondition(t, "waves", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonNoTrustPolicy)
	waveOf := map[string]int32{}
	var names []string
	want := []int{2, 8, 10}
	for i := 0; len(names) < 20; i++ {
		n := fmt.Sprintf("waves-%03d", i)
		w := rollout.WaveOf(rollout.Bucket(n, p.UID), waves)
		if want[w] > 0 {
			want[w]--
			waveOf[n] = w
			names = append(names, n)
		}
	}
	for _, n := range names {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"bpfleet.io/test": "waves"}}}
		create(t, node)
		t.Cleanup(func() {
			_ = env.Client.Delete(context.Background(), &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: n}})
		})
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		if n := get(t, "waves").Status.Nodes.Selected; n != 20 {
			return fmt.Errorf("%d nodes selected, want 20", n)
		}
		return nil
	})
	// The policy admits the bundle: the first rollout starts.
	trustPolicy(t, "waves", reg, pub)

	// agents plays every agent once: each node runs what DigestForNode says,
	// and fails digest failing (if set) when in wave failWave.
	agents := func(p *v1.BpfProgram, failing string, failWave int32) {
		for _, n := range names {
			d := rollout.DigestForNode(p, n)
			if d == "" {
				continue
			}
			phase := v1.PhaseAttached
			if d == failing && waveOf[n] == failWave {
				phase = v1.PhaseFailed
			}
			report(t, p, n, "6.18.0", d, phase)
		}
	}
	// checkMembership asserts that exactly the nodes of waves 0..wave run target.
	checkMembership := func(p *v1.BpfProgram, target, other string) {
		t.Helper()
		r := p.Status.Rollout
		for _, n := range names {
			want := other
			if waveOf[n] <= r.Wave {
				want = target
			}
			if got := rollout.DigestForNode(p, n); got != want {
				t.Fatalf("wave %d in progress: node %s (wave %d) runs %q, want %q", r.Wave, n, waveOf[n], got, want)
			}
		}
	}
	waitWave := func(wave int32, reason string) *v1.BpfProgram {
		t.Helper()
		var p *v1.BpfProgram
		envtest.Eventually(t, 30*time.Second, func() error {
			p = get(t, "waves")
			c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionRolledOut)
			if p.Status.Rollout == nil || p.Status.Rollout.Wave != wave || c == nil || c.Reason != reason {
				return fmt.Errorf("rollout %+v RolledOut %+v, want wave %d %s", p.Status.Rollout, c, wave, reason)
			}
			return nil
		})
		return p
	}
	// poke steps the clock past the pause and wakes the reconciler.
	poke := func() {
		t.Helper()
		clock.Step(601 * time.Second)
		mutate(t, "waves", func(q *v1.BpfProgram) {
			if q.Annotations == nil {
				q.Annotations = map[string]string{}
			}
			q.Annotations["test.bpfleet.io/poke"] = clock.Now().String()
		})
	}

	// First rollout: no stable digest, nodes outside the wave run nothing.
	p = waitWave(0, v1.ReasonRolloutInProgress)
	checkMembership(p, d1, "")
	for wave := range int32(3) {
		agents(p, "", -1)
		if wave < 2 {
			p = waitWave(wave, v1.ReasonRolloutPaused)
			checkMembership(p, d1, "")
			poke()
			p = waitWave(wave+1, v1.ReasonRolloutInProgress)
			checkMembership(p, d1, "")
		}
	}
	p = waitWave(2, v1.ReasonRolloutComplete)
	if p.Status.Rollout.StableDigest != d1 || p.Status.Rollout.UpdatedNodes != 20 {
		t.Fatalf("rollout %+v after the last wave", p.Status.Rollout)
	}
	waitCondition(t, "waves", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
	waitEvent(t, "waves", "WaveCompleted", "wave 1 of 3")

	// Second digest: wave 0 takes it, wave 1 fails it, the rollout halts and
	// every node returns to d1.
	p = mutate(t, "waves", func(q *v1.BpfProgram) { q.Spec.Bundle.Image = ref2 })
	envtest.Eventually(t, 30*time.Second, func() error {
		p = get(t, "waves")
		if r := p.Status.Rollout; r == nil || r.TargetDigest != d2 || r.StableDigest != d1 || r.Wave != 0 {
			return fmt.Errorf("rollout %+v, want wave 0 of %s from %s", r, d2, d1)
		}
		return nil
	})
	checkMembership(p, d2, d1)
	agents(p, d2, 1)
	p = waitWave(0, v1.ReasonRolloutPaused)
	poke()
	p = waitWave(1, v1.ReasonRolloutInProgress)
	checkMembership(p, d2, d1)
	agents(p, d2, 1)
	p = waitWave(1, v1.ReasonRolledBack)
	r := p.Status.Rollout
	if r.HaltedReason == "" || len(r.FailedNodes) == 0 {
		t.Fatalf("halted rollout %+v lacks reason or failed nodes", r)
	}
	for _, n := range r.FailedNodes {
		if waveOf[n] != 1 {
			t.Errorf("failed node %s is in wave %d, not 1", n, waveOf[n])
		}
	}
	for _, n := range names {
		if got := rollout.DigestForNode(p, n); got != d1 {
			t.Errorf("node %s runs %s after the rollback, want %s", n, got, d1)
		}
	}
	waitEvent(t, "waves", "RolloutHalted", r.FailedNodes[0])
	waitEvent(t, "waves", v1.ReasonRolledBack, strings.TrimPrefix(d1, "sha256:")[:12])
	waitCondition(t, "waves", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonRolloutHalted)
}

// TestKernelPausedDuringRollout rolls a second digest over nodes of two
// kernel releases; the digest fails on one of them. That release is paused
// on the stable digest (every node of it, whatever its wave) while the nodes
// of the other release complete every wave, and maxFailedNodes 0 does not
// halt the rollout for it.
func TestKernelPausedDuringRollout(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref1, d1 := testbundle.Push(t, reg, "ebpf/kpause", "v1", testbundle.Source{})
	sign(t, ref1, priv)
	ref2, d2 := testbundle.Push(t, reg, "ebpf/kpause", "v2", testbundle.Source{Return: 1})
	sign(t, ref2, priv)
	trustPolicy(t, "kpause", reg, pub)
	const newKernel, oldKernel = "6.18.0", "5.10.0"
	names := nodes(t, "kpause", 20)
	release := map[string]string{}
	for i, n := range names {
		release[n] = newKernel
		if i%2 == 1 {
			release[n] = oldKernel
		}
	}
	program(t, "kpause", ref1, "kpause", func(p *v1.BpfProgram) {
		p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: []int32{10, 50, 100}, MaxFailedNodes: 0}
	})

	// play runs every agent until the RolledOut condition has reason: each
	// node runs what DigestForNodeKernel says for its release, and digest
	// d2 fails on oldKernel. A node writes only when its answer changed.
	reported := map[string]string{}
	play := func(reason string) *v1.BpfProgram {
		t.Helper()
		var p *v1.BpfProgram
		envtest.Eventually(t, 60*time.Second, func() error {
			p = get(t, "kpause")
			for _, n := range names {
				d := rollout.DigestForNodeKernel(p, n, release[n])
				if d == "" || reported[n] == d {
					continue
				}
				phase := v1.PhaseAttached
				if d == d2 && release[n] == oldKernel {
					phase = v1.PhaseFailed
				}
				report(t, p, n, release[n], d, phase)
				reported[n] = d
			}
			c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionRolledOut)
			if c == nil || c.Reason != reason {
				return fmt.Errorf("RolledOut %+v rollout %+v, want reason %s", c, p.Status.Rollout, reason)
			}
			return nil
		})
		return p
	}
	p := play(v1.ReasonRolloutComplete)
	if r := p.Status.Rollout; r.StableDigest != d1 || r.UpdatedNodes != 20 {
		t.Fatalf("first rollout %+v", r)
	}

	mutate(t, p.Name, func(q *v1.BpfProgram) { q.Spec.Bundle.Image = ref2 })
	p = play(v1.ReasonKernelsPaused)
	r := p.Status.Rollout
	if r.HaltedReason != "" || r.TargetDigest != d2 || r.StableDigest != d1 || r.Wave != 2 {
		t.Fatalf("rollout %+v, want every wave of %s done, stable %s, not halted", r, d2, d1)
	}
	if len(r.PausedKernels) != 1 || r.PausedKernels[0].Release != oldKernel || release[r.PausedKernels[0].Node] != oldKernel ||
		!strings.Contains(r.PausedKernels[0].Reason, v1.ReasonVerifierRejected) {
		t.Fatalf("paused kernels %+v, want %s only, with the failure", r.PausedKernels, oldKernel)
	}
	for _, n := range names {
		want := d2
		if release[n] == oldKernel {
			want = d1
		}
		if got := rollout.DigestForNodeKernel(p, n, release[n]); got != want {
			t.Errorf("node %s (%s, wave %d) runs %s, want %s", n, release[n], rollout.NodeWave(p, n), got, want)
		}
	}
	// The fleet view: every node runs what it must, and the matrix keeps
	// what the paused release taught.
	envtest.Eventually(t, 30*time.Second, func() error {
		p = get(t, "kpause")
		if p.Status.Nodes.Attached != 20 || p.Status.Nodes.Failed != 0 {
			return fmt.Errorf("nodes %+v, want 20 attached", p.Status.Nodes)
		}
		return nil
	})
	if k := p.Status.Kernels; len(k) != 2 || k[0].Release != oldKernel || k[0].Attached != 10 ||
		!strings.HasPrefix(k[0].FirstFailure, "paused: ") || k[1].Release != newKernel || k[1].Attached != 10 || k[1].FirstFailure != "" {
		t.Errorf("kernels %+v", k)
	}
	waitCondition(t, "kpause", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonKernelsPaused)
	waitCondition(t, "kpause", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonKernelsPaused)
	waitEvent(t, "kpause", "KernelPaused", oldKernel)
}

// TestInvalidNodeSelectorDegrades: a nodeSelector that cannot be evaluated
// (admitted by an older CRD) marks the BpfProgram Degraded with reason
// InvalidNodeSelector, leaves its rollout as it was, and clears once fixed.
func TestInvalidNodeSelectorDegrades(t *testing.T) {
	startOperator(t)
	_, p := readyFleet(t, "badsel", 1)
	rollout := p.Status.Rollout.DeepCopy()
	env.WithoutRules(t, "bpfprograms.bpfleet.io", "spec.nodeSelector")
	valid := p.Spec.NodeSelector.DeepCopy()
	envtest.Eventually(t, 10*time.Second, func() error {
		p = get(t, "badsel")
		p.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}
		return env.Client.Update(context.Background(), p)
	})
	p = waitCondition(t, "badsel", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonInvalidNodeSelector)
	if !equality.Semantic.DeepEqual(p.Status.Rollout, rollout) {
		t.Errorf("rollout moved under an invalid selector:\nbefore %+v\nafter  %+v", rollout, p.Status.Rollout)
	}
	// The operator writes the object too (its finalizer): retry on a
	// conflict with the latest version.
	envtest.Eventually(t, 10*time.Second, func() error {
		p = get(t, "badsel")
		p.Spec.NodeSelector = valid
		return env.Client.Update(context.Background(), p)
	})
	waitCondition(t, "badsel", v1.ConditionDegraded, metav1.ConditionFalse, v1.ReasonNoFailures)
}
