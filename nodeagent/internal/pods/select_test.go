package pods_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/internal/pods"
)

func TestSelect(t *testing.T) {
	pod := func(ns, name, app string, phase corev1.PodPhase) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}}, Status: corev1.PodStatus{Phase: phase}}
	}
	deleting := pod("a", "deleting", "web", corev1.PodRunning)
	deleting.DeletionTimestamp = &metav1.Time{}
	onNode := []corev1.Pod{
		pod("b", "web-b", "web", corev1.PodRunning),
		pod("a", "web-a", "web", corev1.PodRunning),
		pod("a", "starting", "web", corev1.PodPending),
		pod("a", "db", "db", corev1.PodRunning),
		pod("a", "done", "web", corev1.PodSucceeded),
		deleting,
		pod("c", "web-c", "web", corev1.PodRunning),
	}
	nsLabels := map[string]map[string]string{"a": {"team": "a"}, "b": {"team": "b"}, "c": {"team": "a"}}
	lookup := func(ns string) (map[string]string, bool) { l, ok := nsLabels[ns]; return l, ok }
	web := v1alpha1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	teamA := &v1alpha1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	tests := []struct {
		name   string
		target v1alpha1.PodSelector
		tenant *v1alpha1.Tenant
		want   []string
	}{
		{"cluster program, every namespace", v1alpha1.PodSelector{Selector: web}, nil, []string{"a/starting", "a/web-a", "b/web-b", "c/web-c"}},
		{"cluster program, team a namespaces", v1alpha1.PodSelector{Selector: web, NamespaceSelector: teamA}, nil, []string{"a/starting", "a/web-a", "c/web-c"}},
		{"tenant a: its own namespace only", v1alpha1.PodSelector{Selector: web}, &v1alpha1.Tenant{Namespace: "a", Name: "x"}, []string{"a/starting", "a/web-a"}},
		// Written around admission: a tenant's namespaceSelector widens nothing.
		{"tenant b with a namespaceSelector for team a", v1alpha1.PodSelector{Selector: web, NamespaceSelector: teamA}, &v1alpha1.Tenant{Namespace: "b", Name: "x"}, []string{"b/web-b"}},
		{"empty selector selects every pod", v1alpha1.PodSelector{}, &v1alpha1.Tenant{Namespace: "a", Name: "x"}, []string{"a/db", "a/starting", "a/web-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pods.Select(&tt.target, tt.tenant, onNode, lookup)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range got {
				names = append(names, p.Namespace+"/"+p.Name)
			}
			if len(names) != len(tt.want) {
				t.Fatalf("Select = %v, want %v", names, tt.want)
			}
			for i := range names {
				if names[i] != tt.want[i] {
					t.Fatalf("Select = %v, want %v", names, tt.want)
				}
			}
		})
	}
	bad := v1alpha1.PodSelector{Selector: v1alpha1.LabelSelector{MatchExpressions: []v1alpha1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}}
	if _, err := pods.Select(&bad, nil, onNode, lookup); err == nil {
		t.Fatal("a malformed selector was evaluated")
	}
}
