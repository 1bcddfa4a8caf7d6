package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// TestUntrustedBundlesAreRefused: an unsigned bundle and one signed by a key
// no policy trusts fail with VerifyFailed and nothing is loaded.
func TestUntrustedBundlesAreRefused(t *testing.T) {
	w := newWorld(t)
	otherPriv, _, err := signing.GenerateKeyPair(t.TempDir(), []byte(password))
	if err != nil {
		t.Fatal(err)
	}

	unsignedRef, unsigned := w.push(t, "unsigned", "0.1.0", false)
	wrongRef, wrong := w.push(t, "wrongkey", "0.3.0", false)
	if err := signing.Sign(context.Background(), w.repo+"@"+wrong, otherPriv, []byte(password), remote.Options{}); err != nil {
		t.Fatalf("sign with another key: %v", err)
	}
	pu := w.createProgram(t, unsignedRef, unsigned, denyEntry(deniedPort))
	pw := w.createProgram(t, wrongRef, wrong, denyEntry(deniedPort))
	w.startAgent(t)

	for _, p := range []*v1alpha1.BpfProgram{pu, pw} {
		e := w.waitEntry(t, p, "refused "+p.Name, func(s v1alpha1.ProgramState) bool {
			return s.State == v1alpha1.PhaseFailed && s.Reason == v1alpha1.ReasonVerifyFailed
		})
		if e.ID != 0 || e.Message == "" {
			t.Errorf("refused entry %+v: want no program id and a message", e)
		}
	}
	if left := w.bpffsLeft(t); len(left) != 0 {
		t.Errorf("something was pinned for untrusted bundles: %v", left)
	}
	if got := w.delivered(t, deniedPort, 5); got == 0 {
		t.Errorf("a filter runs although no bundle was trusted")
	}
	c := meta.FindStatusCondition(w.state(t).Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonVerifyFailed {
		t.Errorf("Ready = %+v, want False/VerifyFailed", c)
	}
	eventually(t, 10*time.Second, "a VerifyFailed warning event", func() (bool, string) {
		var evs eventsv1.EventList
		if err := env.Client.List(context.Background(), &evs); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == w.node && e.Reason == v1alpha1.ReasonVerifyFailed && e.Type == corev1.EventTypeWarning {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none for %s", len(evs.Items), w.node)
	})
}

// TestTrustPolicyKeyFromSecret: a policy whose key lives in a Secret admits
// the bundle; the agent reads the Secret directly (get only, no watch).
func TestTrustPolicyKeyFromSecret(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: trust.DefaultSecretNamespace, Name: "cosign-" + w.node},
		Data:       map[string][]byte{"cosign.pub": w.pub},
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: trust.DefaultSecretNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), secret) })
	grantSecret(t, secret)
	w.policy.Spec.Keys = []v1alpha1.TrustedKey{{Name: "from-secret", SecretRef: &v1alpha1.SecretKeyRef{Namespace: trust.DefaultSecretNamespace, Name: secret.Name}}}
	if err := env.Client.Update(ctx, w.policy); err != nil {
		t.Fatal(err)
	}
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t)
	e := w.waitEntry(t, p, "attached", attachedAt(digest))
	if !strings.Contains(e.Signer, "from-secret") {
		t.Errorf("signer %q does not name the secret's key", e.Signer)
	}
}

// grantSecret lets the agent's test user get this one Secret, as the Role
// bpfleet-trust-keys does once a policy names it (operator/trustkeys).
func grantSecret(t *testing.T, s *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	om := metav1.ObjectMeta{Namespace: s.Namespace, Name: "trust-keys-" + s.Name}
	role := &rbacv1.Role{ObjectMeta: om,
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{s.Name}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: om,
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: agentUser}}}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
}
