package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
)

func TestTrustPolicyStatus(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	_, pub := keyPair(t)
	_, pub2 := keyPair(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "team-key", Namespace: trust.DefaultSecretNamespace},
		Data:       map[string][]byte{"cosign.pub": []byte(pub2)},
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: trust.DefaultSecretNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	create(t, secret)
	reg := registry.Start(t, registry.Options{})
	pol := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "keys"},
		Spec: v1.BundleTrustPolicySpec{
			Images: []string{reg.Host + "/policy/*"},
			Keys: []v1.TrustedKey{
				{Name: "inline", PublicKey: pub},
				{Name: "from-secret", SecretRef: &v1.SecretKeyRef{Namespace: trust.DefaultSecretNamespace, Name: "team-key", Key: "cosign.pub"}},
			},
		},
	}
	create(t, pol)
	program(t, "covered", reg.Ref("policy/a", "v1"), "nobody")
	program(t, "not-covered", reg.Ref("elsewhere/a", "v1"), "nobody")

	waitPolicy := func(check func(*v1.BundleTrustPolicy) error) *v1.BundleTrustPolicy {
		t.Helper()
		got := &v1.BundleTrustPolicy{}
		envtest.Eventually(t, 30*time.Second, func() error {
			if err := env.Client.Get(ctx, client.ObjectKey{Name: "keys"}, got); err != nil {
				return err
			}
			if got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("status of generation %d, want %d", got.Status.ObservedGeneration, got.Generation)
			}
			return check(got)
		})
		return got
	}
	got := waitPolicy(func(p *v1.BundleTrustPolicy) error {
		if !meta.IsStatusConditionTrue(p.Status.Conditions, v1.ConditionReady) || p.Status.KeyCount != 2 || p.Status.CoveredPrograms != 1 {
			return fmt.Errorf("status %+v", p.Status)
		}
		return nil
	})
	fp, err := signing.Fingerprint([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.KeyFingerprints) != 2 || got.Status.KeyFingerprints[0] != "inline "+fp {
		t.Errorf("fingerprints %q, want inline %s first", got.Status.KeyFingerprints, fp)
	}

	// A key that does not parse: Ready False KeyInvalid naming it.
	got.Spec.Keys[0].PublicKey = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitPolicy(func(p *v1.BundleTrustPolicy) error {
		c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady)
		if c == nil || c.Reason != v1.ReasonKeyInvalid || !strings.Contains(c.Message, "inline") || p.Status.KeyCount != 1 {
			return fmt.Errorf("Ready %+v keyCount %d", c, p.Status.KeyCount)
		}
		return nil
	})

	// allowUnsigned is loud: a condition and a Warning Event.
	got = &v1.BundleTrustPolicy{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "keys"}, got); err != nil {
		t.Fatal(err)
	}
	got.Spec.AllowUnsigned = true
	got.Spec.Keys[0].PublicKey = pub
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitPolicy(func(p *v1.BundleTrustPolicy) error {
		if !meta.IsStatusConditionTrue(p.Status.Conditions, v1.ConditionUnsignedAllowed) {
			return fmt.Errorf("conditions %+v", p.Status.Conditions)
		}
		return nil
	})
	ev := waitEvent(t, "keys", v1.ReasonUnsignedAllowed, "UNSIGNED")
	if ev.Type != corev1.EventTypeWarning {
		t.Errorf("event type %s, want Warning", ev.Type)
	}
}
