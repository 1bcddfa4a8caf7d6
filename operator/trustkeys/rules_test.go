package trustkeys

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func policy(keys ...v1alpha1.TrustedKey) v1alpha1.BundleTrustPolicy {
	return v1alpha1.BundleTrustPolicy{Spec: v1alpha1.BundleTrustPolicySpec{Images: []string{"r.example.com/*"}, Keys: keys}}
}

func secretKey(name, namespace, secret string) v1alpha1.TrustedKey {
	return v1alpha1.TrustedKey{Name: name, SecretRef: &v1alpha1.SecretKeyRef{Namespace: namespace, Name: secret, Key: "cosign.pub"}}
}

func getSecrets(names ...string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: names}}
}

func TestRules(t *testing.T) {
	const ns = "bpfleet-system"
	inline := v1alpha1.TrustedKey{Name: "inline", PublicKey: "-----BEGIN PUBLIC KEY-----"}
	for _, tc := range []struct {
		name     string
		policies []v1alpha1.BundleTrustPolicy
		want     []rbacv1.PolicyRule
	}{
		{name: "no policies: no rule", want: nil},
		{name: "inline keys and unsigned only: no rule", policies: []v1alpha1.BundleTrustPolicy{
			policy(inline),
			{Spec: v1alpha1.BundleTrustPolicySpec{Images: []string{"**"}, AllowUnsigned: true}},
		}, want: nil},
		{name: "only other namespaces: no rule", policies: []v1alpha1.BundleTrustPolicy{
			policy(secretKey("a", "kube-system", "admin-token"), secretKey("b", "default", "x")),
		}, want: nil},
		{name: "one secret", policies: []v1alpha1.BundleTrustPolicy{
			policy(inline, secretKey("a", ns, "team-key")),
		}, want: getSecrets("team-key")},
		{name: "sorted and deduplicated across keys and policies", policies: []v1alpha1.BundleTrustPolicy{
			policy(secretKey("z", ns, "zeta"), secretKey("a", ns, "alpha")),
			policy(secretKey("again", ns, "zeta"), secretKey("m", ns, "mu"), secretKey("elsewhere", "default", "beta")),
			policy(secretKey("alpha-too", ns, "alpha")),
		}, want: getSecrets("alpha", "mu", "zeta")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Rules(tc.policies, ns)
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("Rules = %+v, want %+v", got, tc.want)
			}
			for _, r := range got {
				if len(r.ResourceNames) == 0 {
					t.Errorf("rule %+v has no resourceNames: it would grant every Secret", r)
				}
			}
		})
	}
}

func TestSameRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []rbacv1.PolicyRule
		want bool
	}{
		{name: "nil and empty", a: nil, b: []rbacv1.PolicyRule{}, want: true},
		{name: "equal", a: getSecrets("a", "b"), b: getSecrets("a", "b"), want: true},
		{name: "one more name", a: getSecrets("a"), b: getSecrets("a", "b"), want: false},
		{name: "none and some", a: nil, b: getSecrets("a"), want: false},
	} {
		if got := sameRules(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: sameRules = %v, want %v", tc.name, got, tc.want)
		}
	}
}
