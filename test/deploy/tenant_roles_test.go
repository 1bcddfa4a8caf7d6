package deploy_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestTenantRoles binds alice to bpfleet-edit and bob to bpfleet-view in
// namespace tenant-a only, as a namespace admin would, and checks what each
// may do with the real RBAC authorizer: BpfPodPrograms of tenant-a, and
// nothing of tenant-b or of the cluster-scoped kinds.
func TestTenantRoles(t *testing.T) {
	ensureNamespace(t)
	ctx := context.Background()
	if out, err := env.Kubectl(ctx, "apply", "-k", configDir(t, "rbac")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for user, role := range map[string]string{"alice": "bpfleet-edit", "bob": "bpfleet-view"} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: user},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		}
		if err := env.Client.Create(ctx, rb); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if role == "bpfleet-edit" {
			// edit users usually hold bpfleet-view through aggregation;
			// bind it as the aggregation controller would have.
			rb := rb.DeepCopy()
			rb.ResourceVersion, rb.Name, rb.RoleRef.Name = "", user+"-view", "bpfleet-view"
			if err := env.Client.Create(ctx, rb); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	podProgram := func(ns string) *v1.BpfPodProgram {
		return &v1.BpfPodProgram{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "filter"},
			Spec: v1.BpfProgramSpec{
				Bundle: v1.BundleSource{Image: "registry.example.com/ebpf/filter:v1"},
				Programs: []v1.ProgramAttachment{{Name: "xdp_pass", XDP: &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}},
					Pods: &v1.PodSelector{Selector: v1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}}},
			},
		}
	}
	clusterProgram := &v1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: "tenant-made"}, Spec: podProgram("").Spec}
	alice := impersonate(t, "alice", []string{"system:authenticated"}, nil)
	bob := impersonate(t, "bob", []string{"system:authenticated"}, nil)
	dry := client.DryRunAll

	tests := []struct {
		name    string
		do      func() error
		allowed bool
	}{
		{"edit creates in its namespace", func() error { return alice.Create(ctx, podProgram("tenant-a"), dry) }, true},
		{"edit lists in its namespace", func() error { return alice.List(ctx, &v1.BpfPodProgramList{}, client.InNamespace("tenant-a")) }, true},
		{"edit creates in another namespace", func() error { return alice.Create(ctx, podProgram("tenant-b"), dry) }, false},
		{"edit lists every namespace", func() error { return alice.List(ctx, &v1.BpfPodProgramList{}) }, false},
		{"edit creates a cluster BpfProgram", func() error { return alice.Create(ctx, clusterProgram.DeepCopy(), dry) }, false},
		{"edit reads node states", func() error { return alice.List(ctx, &v1.BpfNodeStateList{}) }, false},
		{"edit writes a trust policy", func() error {
			return alice.Create(ctx, &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: "mine"},
				Spec: v1.BundleTrustPolicySpec{Images: []string{"registry.example.com/*"}, AllowUnsigned: true}}, dry)
		}, false},
		{"view lists in its namespace", func() error { return bob.List(ctx, &v1.BpfPodProgramList{}, client.InNamespace("tenant-a")) }, true},
		{"view creates", func() error { return bob.Create(ctx, podProgram("tenant-a"), dry) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Fresh bindings take a moment to reach the authorizer's cache.
			envtest.Eventually(t, 15*time.Second, func() error {
				err := tt.do()
				if tt.allowed {
					return err
				}
				if !apierrors.IsForbidden(err) {
					t.Fatalf("allowed or failed otherwise (%v), want Forbidden", err)
				}
				return nil
			})
		})
	}

	// The roles carry the labels that aggregate them into view/edit/admin.
	for role, labels := range map[string][]string{
		"bpfleet-view": {"aggregate-to-view", "aggregate-to-edit", "aggregate-to-admin"},
		"bpfleet-edit": {"aggregate-to-edit", "aggregate-to-admin"},
	} {
		cr := &rbacv1.ClusterRole{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: role}, cr); err != nil {
			t.Fatal(err)
		}
		for _, l := range labels {
			if cr.Labels["rbac.authorization.k8s.io/"+l] != "true" {
				t.Errorf("%s lacks label %s", role, l)
			}
		}
	}
}
