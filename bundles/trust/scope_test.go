package trust_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

func TestScoped(t *testing.T) {
	policy := func(name string, sel *metav1.LabelSelector) v1alpha1.BundleTrustPolicy {
		return v1alpha1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BundleTrustPolicySpec{NamespaceSelector: sel}}
	}
	policies := []v1alpha1.BundleTrustPolicy{
		policy("cluster", nil),
		policy("team-a", &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}),
		policy("every-namespace", &metav1.LabelSelector{}),
		policy("malformed", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Bogus"}}}),
	}
	ns := func(labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: labels}}
	}
	tests := []struct {
		name   string
		tenant *corev1.Namespace
		want   []string
	}{
		{"cluster program", nil, []string{"cluster"}},
		{"team a", ns(map[string]string{"team": "a"}), []string{"team-a", "every-namespace"}},
		{"team b", ns(map[string]string{"team": "b"}), []string{"every-namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range trust.Scoped(policies, tt.tenant) {
				got = append(got, p.Name)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Scoped = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Scoped = %v, want %v", got, tt.want)
				}
			}
		})
	}
}
