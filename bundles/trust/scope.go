package trust

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Scoped returns the policies that may admit a bundle of a program: for a
// cluster-scoped BpfProgram (tenant nil) the policies without a
// namespaceSelector; for a BpfPodProgram's program, those whose
// namespaceSelector matches the tenant's namespace. A policy whose selector
// cannot be parsed covers nothing (admission refuses such selectors; this
// keeps one written around admission from widening trust).
func Scoped(policies []v1alpha1.BundleTrustPolicy, tenant *corev1.Namespace) []v1alpha1.BundleTrustPolicy {
	var out []v1alpha1.BundleTrustPolicy
	for _, p := range policies {
		sel := p.Spec.NamespaceSelector
		switch {
		case tenant == nil && sel == nil:
			out = append(out, p)
		case tenant != nil && sel != nil:
			if ok, err := selects(sel, tenant.Labels); err == nil && ok {
				out = append(out, p)
			}
		}
	}
	return out
}

func selects(sel *metav1.LabelSelector, set map[string]string) (bool, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, fmt.Errorf("parse namespaceSelector: %w", err)
	}
	return s.Matches(labels.Set(set)), nil
}
