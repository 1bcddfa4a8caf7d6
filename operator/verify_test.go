package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/rollout"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func TestRefusedBundles(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	otherPriv, _ := keyPair(t)
	trustPolicy(t, "refused", reg, pub)
	names := nodes(t, "refused", 1)

	signedRef, _ := testbundle.Push(t, reg, "ebpf/signed", "v1", testbundle.Source{})
	sign(t, signedRef, priv)
	unsignedRef, _ := testbundle.Push(t, reg, "ebpf/unsigned", "v1", testbundle.Source{Return: 1})
	wrongKeyRef, _ := testbundle.Push(t, reg, "ebpf/wrongkey", "v1", testbundle.Source{Return: 3})
	sign(t, wrongKeyRef, otherPriv)
	tamperedRef, tamperedDigest := testbundle.Push(t, reg, "ebpf/tampered", "v1", testbundle.Source{Return: 4})
	sign(t, tamperedRef, priv)
	tamperConfig(t, reg, tamperedRef, tamperedDigest)
	otherReg := registry.Start(t, registry.Options{})
	uncoveredRef, _ := testbundle.Push(t, otherReg, "ebpf/uncovered", "v1", testbundle.Source{})

	tests := []struct {
		name  string
		image string
		// mutate changes the spec away from the test bundle's.
		mutate func(*v1.BpfProgram)
		// condition and reason are the condition that turns False.
		condition, reason string
	}{
		{name: "unsigned", image: unsignedRef, condition: v1.ConditionSignatureVerified, reason: v1.ReasonUnsigned},
		{name: "wrong-key", image: wrongKeyRef, condition: v1.ConditionSignatureVerified, reason: v1.ReasonSignatureMismatch},
		{name: "no-policy", image: uncoveredRef, condition: v1.ConditionSignatureVerified, reason: v1.ReasonNoTrustPolicy},
		{name: "tampered", image: tamperedRef, condition: v1.ConditionBundleResolved, reason: v1.ReasonBundleInvalid},
		{name: "program-missing", image: signedRef, condition: v1.ConditionBundleResolved, reason: v1.ReasonProgramNotInBundle,
			mutate: func(p *v1.BpfProgram) { p.Spec.Programs[1].Name = "not_in_bundle" }},
		{name: "attach-mismatch", image: signedRef, condition: v1.ConditionBundleResolved, reason: v1.ReasonAttachMismatch,
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].TC = &v1.TCAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}, Direction: v1.TCIngress}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "refused-" + tt.name
			var mutate []func(*v1.BpfProgram)
			if tt.mutate != nil {
				mutate = append(mutate, tt.mutate)
			}
			program(t, name, tt.image, "refused", mutate...)
			p := waitCondition(t, name, tt.condition, metav1.ConditionFalse, tt.reason)
			if p.Status.Rollout != nil {
				t.Errorf("rollout %+v for a refused bundle", p.Status.Rollout)
			}
			if got := rollout.DigestForNode(p, names[0]); got != "" {
				t.Errorf("node told to run %s", got)
			}
			ready := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady)
			if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != tt.reason {
				t.Errorf("Ready %+v, want False/%s", ready, tt.reason)
			}
			waitEvent(t, name, tt.reason, "")
		})
	}

	// A refused update leaves the verified digest running.
	t.Run("refused-update-keeps-old", func(t *testing.T) {
		p := program(t, "refused-update", signedRef, "refused")
		p = waitCondition(t, p.Name, v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
		old := p.Status.ResolvedDigest
		report(t, p, names[0], "6.18.0", old, v1.PhaseAttached)
		waitCondition(t, p.Name, v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

		p = mutate(t, p.Name, func(q *v1.BpfProgram) { q.Spec.Bundle.Image = unsignedRef })
		p = waitCondition(t, p.Name, v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonUnsigned)
		if got := rollout.DigestForNode(p, names[0]); got != old {
			t.Errorf("node told to run %q after a refused update, want the old %s", got, old)
		}
		if p.Status.Nodes.Attached != 1 {
			t.Errorf("nodes %+v: the old digest still runs", p.Status.Nodes)
		}
		waitCondition(t, p.Name, v1.ConditionReady, metav1.ConditionFalse, v1.ReasonUnsigned)
	})
}

// tamperConfig replaces the config blob (the manifest the operator reads)
// of the bundle ref@digest in reg.
func tamperConfig(t testing.TB, reg *registry.Registry, ref, digest string) {
	t.Helper()
	r, err := remote.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	b, err := remote.New(remote.Options{PlainHTTP: true}).Fetch(context.Background(), r.Repository, digest)
	if err != nil {
		t.Fatalf("fetch %s: %v", ref, err)
	}
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		t.Fatal(err)
	}
	reg.TamperBlob(t, im.Config.Digest.String(), []byte(`{"name":"not the signed manifest"}`))
}

func TestTagMovedKeepsRecordedDigest(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, "moved", reg, pub)
	names := nodes(t, "moved", 2)
	ref, d1 := testbundle.Push(t, reg, "ebpf/moved", "stable", testbundle.Source{})
	sign(t, ref, priv)
	program(t, "moved", ref, "moved")
	p := waitCondition(t, "moved", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	for _, n := range names {
		report(t, p, n, "6.18.0", d1, v1.PhaseAttached)
	}
	waitCondition(t, "moved", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

	// The tag moves; a node report wakes the reconciler, which keeps d1.
	_, d2 := testbundle.Push(t, reg, "ebpf/moved", "stable", testbundle.Source{Return: 1})
	sign(t, ref, priv)
	if d1 == d2 {
		t.Fatal("the second push has the same digest")
	}
	report(t, p, names[0], "6.18.1", d1, v1.PhaseAttached)
	envtest.Eventually(t, 30*time.Second, func() error {
		if k := get(t, "moved").Status.Kernels; len(k) != 2 {
			return fmt.Errorf("kernels %+v: the report was not summed yet", k)
		}
		return nil
	})
	p = get(t, "moved")
	if p.Status.ResolvedDigest != d1 || rollout.DigestForNode(p, names[1]) != d1 {
		t.Fatalf("resolved %s, node runs %s after the tag moved; want %s kept", p.Status.ResolvedDigest, rollout.DigestForNode(p, names[1]), d1)
	}

	// The resolve annotation picks up d2 and starts a rollout; it is removed.
	p = mutate(t, p.Name, func(q *v1.BpfProgram) {
		if q.Annotations == nil {
			q.Annotations = map[string]string{}
		}
		q.Annotations[v1.ResolveAnnotation] = "now"
	})
	envtest.Eventually(t, 30*time.Second, func() error {
		p = get(t, "moved")
		if p.Status.ResolvedDigest != d2 {
			return fmt.Errorf("resolved %s, want %s", p.Status.ResolvedDigest, d2)
		}
		if _, ok := p.Annotations[v1.ResolveAnnotation]; ok {
			return fmt.Errorf("resolve annotation still set")
		}
		if r := p.Status.Rollout; r == nil || r.TargetDigest != d2 || r.StableDigest != d1 {
			return fmt.Errorf("rollout %+v, want %s from %s", r, d2, d1)
		}
		return nil
	})
	for _, n := range names {
		if got := rollout.DigestForNode(p, n); got != d2 {
			t.Errorf("node %s runs %s, want %s (AllAtOnce)", n, got, d2)
		}
	}
	waitEvent(t, "moved", "RolloutStarted", strings.TrimPrefix(d2, "sha256:")[:12])
}

func TestRegistryOutageChangesNothingForNodes(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, "outage", reg, pub)
	names := nodes(t, "outage", 1)
	ref, digest := testbundle.Push(t, reg, "ebpf/outage", "v1", testbundle.Source{})
	sign(t, ref, priv)
	program(t, "outage", ref, "outage", func(p *v1.BpfProgram) { p.Spec.Bundle.PullPolicy = v1.PullAlways })
	p := waitCondition(t, "outage", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	report(t, p, names[0], "6.18.0", digest, v1.PhaseAttached)
	waitCondition(t, "outage", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

	// The registry goes away; the next resolve (a node report wakes the
	// reconciler, pullPolicy Always resolves each time) fails.
	reg.Stop()
	report(t, p, names[0], "6.18.1", digest, v1.PhaseAttached)
	p = waitCondition(t, "outage", v1.ConditionBundleResolved, metav1.ConditionFalse, v1.ReasonRegistryUnavailable)
	if got := rollout.DigestForNode(p, names[0]); got != digest {
		t.Errorf("node told to run %q during the outage, want %s", got, digest)
	}
	if p.Status.ResolvedDigest != digest {
		t.Errorf("resolved digest %s changed during the outage", p.Status.ResolvedDigest)
	}
	// Written by the same reconcile that saw the outage.
	if c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady); c == nil || c.Reason != v1.ReasonAllAttached {
		t.Errorf("Ready %+v during the outage, want True/AllAttached: what runs keeps running", c)
	}
	waitEvent(t, "outage", v1.ReasonRegistryUnavailable, "")
}

// A trust policy change wakes the BpfPrograms it covers, which verify again.
func TestPolicyChangeVerifiesAgain(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	reg := registry.Start(t, registry.Options{})
	_, pub := keyPair(t)
	pol := trustPolicy(t, "change", reg, pub)
	names := nodes(t, "change", 1)
	ref, digest := testbundle.Push(t, reg, "ebpf/change", "v1", testbundle.Source{})
	program(t, "change", ref, "change")
	waitCondition(t, "change", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonUnsigned)

	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pol), pol); err != nil {
		t.Fatal(err)
	}
	pol.Spec.AllowUnsigned = true
	if err := env.Client.Update(ctx, pol); err != nil {
		t.Fatal(err)
	}
	p := waitCondition(t, "change", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonUnsignedAllowed)
	if got := rollout.DigestForNode(p, names[0]); got != digest {
		t.Errorf("node told to run %q, want %s admitted by allowUnsigned", got, digest)
	}
	if !strings.Contains(p.Status.Signer, "change") {
		t.Errorf("signer %q does not name the policy", p.Status.Signer)
	}
	waitEvent(t, "change", v1.ReasonUnsignedAllowed, "without a valid signature")
}

// A policy's program type allow-list refuses a bundle carrying other types.
func TestProgramTypeDenied(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	pol := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "xdp-only"},
		Spec: v1.BundleTrustPolicySpec{
			Images:              []string{reg.Host + "/*/*"},
			Keys:                []v1.TrustedKey{{Name: "test-key", PublicKey: pub}},
			AllowedProgramTypes: []string{"xdp"},
		},
	}
	create(t, pol)
	names := nodes(t, "denied", 1)
	ref, _ := testbundle.Push(t, reg, "ebpf/denied", "v1", testbundle.Source{})
	sign(t, ref, priv)
	program(t, "denied", ref, "denied")
	p := waitCondition(t, "denied", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonProgramTypeDenied)
	if c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionSignatureVerified); !strings.Contains(c.Message, "tracepoint") {
		t.Errorf("message %q does not name the denied type", c.Message)
	}
	if got := rollout.DigestForNode(p, names[0]); got != "" {
		t.Errorf("node told to run %s", got)
	}
	waitEvent(t, "denied", v1.ReasonProgramTypeDenied, "")
}
