package pods

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Select returns the pods of this node that target picks, sorted by
// namespace and name: running or starting (not finished, not being
// deleted), labelled as target.Selector says, and in the tenant's namespace
// when tenant is set, whatever target says about namespaces, or else in the
// namespaces target.NamespaceSelector picks (namespaceLabels gives each
// namespace's labels). An error means the selector cannot be evaluated; the
// caller keeps what runs.
func Select(target *v1alpha1.PodSelector, tenant *v1alpha1.Tenant, podsOnNode []corev1.Pod, namespaceLabels func(string) (map[string]string, bool)) ([]corev1.Pod, error) {
	podSel, err := metav1.LabelSelectorAsSelector(target.Selector.Selector())
	if err != nil {
		return nil, fmt.Errorf("parse pod selector: %w", err)
	}
	var nsSel labels.Selector
	if tenant == nil && target.NamespaceSelector != nil {
		if nsSel, err = metav1.LabelSelectorAsSelector(target.NamespaceSelector.Selector()); err != nil {
			return nil, fmt.Errorf("parse namespace selector: %w", err)
		}
	}
	var out []corev1.Pod
	for _, p := range podsOnNode {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if tenant != nil && p.Namespace != tenant.Namespace {
			continue
		}
		if nsSel != nil {
			l, ok := namespaceLabels(p.Namespace)
			if !ok || !nsSel.Matches(labels.Set(l)) {
				continue
			}
		}
		if !podSel.Matches(labels.Set(p.Labels)) {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
