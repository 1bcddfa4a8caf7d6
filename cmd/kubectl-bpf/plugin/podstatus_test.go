package plugin_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestStatusOfANamespace runs `kubectl bpf status -n NS` as a user who may
// only read BpfPodPrograms in NS (bpfleet-view through a RoleBinding): it
// prints the namespace's programs with the status the operator mirrored,
// while the cluster-wide view is refused.
func TestStatusOfANamespace(t *testing.T) {
	ctx := context.Background()
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := env.Kubectl(ctx, "apply", "-f", filepath.Join(root, "config", "rbac", "common", "tenant_roles.yaml")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-web"}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-web", Name: "carol-view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "carol"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "bpfleet-view"},
	}
	if err := env.Client.Create(ctx, rb); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pp := &v1.BpfPodProgram{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-web", Name: "frontend-filter"},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: "127.0.0.1:5000/team-web/filter:v1"},
			Programs: []v1.ProgramAttachment{{Name: "xdp_pod_filter", XDP: &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}},
				Pods: &v1.PodSelector{Selector: v1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}}}},
		},
	}
	if err := env.Client.Create(ctx, pp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, pp) })
	pp.Status = v1.BpfProgramStatus{
		ShortDigest: "abababababab", AttachTypes: "xdp", Signer: "team-web-policy/key",
		Nodes: v1.NodeCounts{Selected: 3, Attached: 2, Failed: 1, Summary: "2/3"},
		Conditions: []metav1.Condition{
			{Type: v1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: v1.ReasonAccepted, Message: "ok", LastTransitionTime: metav1.Now()},
			{Type: v1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1.ReasonNodesFailed, Message: "1 node failed", LastTransitionTime: metav1.Now()},
		},
	}
	if err := env.Client.Status().Update(ctx, pp); err != nil {
		t.Fatal(err)
	}

	var out string
	envtest.Eventually(t, 15*time.Second, func() error {
		out, err = run(t, "--as", "carol", "status", "-n", "team-web")
		return err
	})
	for _, want := range []string{"NAMESPACE", "team-web", "frontend-filter", "xdp", "abababababab", "2/3", "True", "False", v1.ReasonNodesFailed} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, "--as", "carol", "status"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("cluster-wide status as carol: err = %v, want forbidden", err)
	}
	if _, err := run(t, "--as", "carol", "status", "-n", "team-web", "missing"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("status of a missing BpfPodProgram: err = %v, want not found", err)
	}
}
