package realnode

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestBuiltInRolesCarryBpfPodPrograms: on the real cluster, whose
// kube-controller-manager aggregates ClusterRoles, a user bound to the
// built-in `edit` role in one namespace may create BpfPodPrograms there
// (bpfleet-edit aggregated into it) and nowhere else, and one bound to
// `view` may read them but not write.
func TestBuiltInRolesCarryBpfPodPrograms(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "agg-team"}}
	if err := e.client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), ns) })
	for user, role := range map[string]string{"dana": "edit", "erin": "view"} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: user},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		}
		if err := e.client.Create(ctx, rb); err != nil {
			t.Fatal(err)
		}
	}
	as := func(user string) client.Client {
		cfg := rest.CopyConfig(e.c.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
		c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pp := func(namespace string) *v1.BpfPodProgram {
		return &v1.BpfPodProgram{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "filter"},
			Spec: v1.BpfProgramSpec{
				Bundle: v1.BundleSource{Image: "registry.example.com/ebpf/filter:v1"},
				Programs: []v1.ProgramAttachment{{Name: "xdp_pass", XDP: &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}},
					Pods: &v1.PodSelector{Selector: v1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}}},
			},
		}
	}
	dana, erin := as("dana"), as("erin")
	// The aggregation controller fills edit and view within moments.
	envtest.Eventually(t, time.Minute, func() error {
		return dana.Create(ctx, pp(ns.Name), client.DryRunAll)
	})
	envtest.Eventually(t, time.Minute, func() error {
		return erin.List(ctx, &v1.BpfPodProgramList{}, client.InNamespace(ns.Name))
	})
	for what, err := range map[string]error{
		"edit creates in another namespace": dana.Create(ctx, pp("default"), client.DryRunAll),
		"edit creates a cluster BpfProgram": dana.Create(ctx, &v1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: "agg-team-x"}, Spec: pp("").Spec}, client.DryRunAll),
		"view creates":                      erin.Create(ctx, pp(ns.Name), client.DryRunAll),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want Forbidden", what, fmt.Sprint(err))
		}
	}
}
