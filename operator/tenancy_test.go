package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/operator/podprogram"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// namespace creates a namespace with labels.
func namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
}

// podProgram creates a BpfPodProgram in ns running the test bundle's two
// programs in the pods labelled app=frontend of the nodes labelled
// bpfleet.io/test=selector.
func podProgram(t *testing.T, ns, name, image, selector string) *v1.BpfPodProgram {
	t.Helper()
	frontend := func() *v1.PodSelector {
		return &v1.PodSelector{Selector: v1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}
	}
	pp := &v1.BpfPodProgram{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: image},
			Programs: []v1.ProgramAttachment{
				{Name: testbundle.XDPProgram, XDP: &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}, Pods: frontend()}},
				{Name: testbundle.TracepointProgram, Tracepoint: &v1.TracepointAttach{Group: "syscalls", Name: "sys_enter_openat", Pods: frontend()}},
			},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bpfleet.io/test": selector}},
		},
	}
	create(t, pp)
	return pp
}

// waitPodCondition waits until the BpfPodProgram's condition typ has
// status and reason for its current generation.
func waitPodCondition(t *testing.T, ns, name, typ string, status metav1.ConditionStatus, reason string) *v1.BpfPodProgram {
	t.Helper()
	pp := &v1.BpfPodProgram{}
	envtest.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pp); err != nil {
			return err
		}
		c := meta.FindStatusCondition(pp.Status.Conditions, typ)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != pp.Generation {
			return fmt.Errorf("condition %s = %+v, want %s/%s at generation %d", typ, c, status, reason, pp.Generation)
		}
		return nil
	})
	return pp
}

// TestPodProgramTrustIsScopedByNamespace: a BpfPodProgram runs through a
// BpfProgram the operator keeps for it, which only the trust policies
// selecting its namespace admit; a cluster program is judged only by
// policies without a namespaceSelector; deleting the BpfPodProgram deletes
// its BpfProgram.
func TestPodProgramTrustIsScopedByNamespace(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	tenantRef, digest := testbundle.Push(t, reg, "ebpf/tenant", "v1", testbundle.Source{})
	sign(t, tenantRef, priv)
	clusterRef, _ := testbundle.Push(t, reg, "ebpf/cluster-only", "v1", testbundle.Source{})
	sign(t, clusterRef, priv)
	key := []v1.TrustedKey{{Name: "test-key", PublicKey: pub}}
	create(t, &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: "scoped-cluster"},
		Spec: v1.BundleTrustPolicySpec{Images: []string{reg.Host + "/ebpf/cluster-only"}, Keys: key}})
	create(t, &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: "scoped-team-a"},
		Spec: v1.BundleTrustPolicySpec{Images: []string{reg.Host + "/ebpf/tenant"}, Keys: key,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}})
	namespace(t, "scoped-a", map[string]string{"team": "a"})
	namespace(t, "scoped-b", map[string]string{"team": "b"})
	nodes(t, "scoped", 2)

	podProgram(t, "scoped-a", "filter", tenantRef, "scoped")
	pp := waitPodCondition(t, "scoped-a", "filter", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	if pp.Status.ResolvedDigest != digest || !strings.Contains(pp.Status.Signer, "scoped-team-a") {
		t.Errorf("mirrored status: digest %s signer %q, want %s by scoped-team-a", pp.Status.ResolvedDigest, pp.Status.Signer, digest)
	}
	waitPodCondition(t, "scoped-a", "filter", v1.ConditionAccepted, metav1.ConditionTrue, v1.ReasonAccepted)
	kept := get(t, podprogram.ProgramName("scoped-a", "filter"))
	if kept.Spec.Tenant == nil || *kept.Spec.Tenant != (v1.Tenant{Namespace: "scoped-a", Name: "filter"}) {
		t.Fatalf("kept program's tenant = %+v", kept.Spec.Tenant)
	}
	if kept.Spec.Programs[0].XDP.Pods == nil || kept.Spec.Bundle.Image != tenantRef {
		t.Fatalf("kept program's spec differs from the BpfPodProgram's: %+v", kept.Spec)
	}

	// The same program in a namespace no policy selects, and the cluster
	// policy's image from a tenant: both refused.
	podProgram(t, "scoped-b", "filter", tenantRef, "scoped")
	waitPodCondition(t, "scoped-b", "filter", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonNoTrustPolicy)
	podProgram(t, "scoped-a", "cluster-image", clusterRef, "scoped")
	waitPodCondition(t, "scoped-a", "cluster-image", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonNoTrustPolicy)
	// A cluster program is not admitted by a namespace policy.
	program(t, "scoped-cluster-tenant-image", tenantRef, "scoped")
	waitCondition(t, "scoped-cluster-tenant-image", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonNoTrustPolicy)
	program(t, "scoped-cluster-image", clusterRef, "scoped")
	waitCondition(t, "scoped-cluster-image", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)

	// A namespace whose policy allows tracepoints only: the XDP program of
	// the same bundle is refused there.
	create(t, &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: "scoped-team-c"},
		Spec: v1.BundleTrustPolicySpec{Images: []string{reg.Host + "/ebpf/tenant"}, Keys: key, AllowedProgramTypes: []string{"tracepoint"},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "c"}}}})
	namespace(t, "scoped-c", map[string]string{"team": "c"})
	podProgram(t, "scoped-c", "filter", tenantRef, "scoped")
	waitPodCondition(t, "scoped-c", "filter", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonProgramTypeDenied)

	// Deleting the BpfPodProgram deletes its BpfProgram, then itself.
	if err := env.Client.Delete(context.Background(), pp); err != nil {
		t.Fatal(err)
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		for _, obj := range []client.Object{&v1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: kept.Name}}, &v1.BpfPodProgram{ObjectMeta: metav1.ObjectMeta{Namespace: "scoped-a", Name: "filter"}}} {
			if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T %s still there (err %v)", obj, obj.GetName(), err)
			}
		}
		return nil
	})
}

// TestPodProgramAroundAdmission: a BpfPodProgram that reaches the API
// without its CRD's confinement rules, naming a node interface, gets no
// BpfProgram at all and says why.
func TestPodProgramAroundAdmission(t *testing.T) {
	startOperator(t)
	namespace(t, "around", nil)
	env.WithoutRules(t, "bpfpodprograms.bpfleet.io", "spec")
	pp := &v1.BpfPodProgram{
		ObjectMeta: metav1.ObjectMeta{Namespace: "around", Name: "host"},
		Spec: v1.BpfProgramSpec{
			Bundle:   v1.BundleSource{Image: "registry.example.com/ebpf/filter:v1"},
			Programs: []v1.ProgramAttachment{{Name: testbundle.XDPProgram, XDP: &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}}}},
		},
	}
	envtest.Eventually(t, 10*time.Second, func() error { return env.Client.Create(context.Background(), pp) })
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pp) })
	got := waitPodCondition(t, "around", "host", v1.ConditionAccepted, metav1.ConditionFalse, v1.ReasonTenancyViolation)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1.ConditionAccepted); !strings.Contains(c.Message, "may only attach to pods") {
		t.Errorf("Accepted message %q does not say why", c.Message)
	}
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: podprogram.ProgramName("around", "host")}, &v1.BpfProgram{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("a BpfProgram exists for a refused BpfPodProgram (err %v)", err)
	}
}

// TestPodProgramNameTaken: a BpfPodProgram whose BpfProgram name belongs
// to a cluster admin's program is refused, and the admin's program is left
// as it was.
func TestPodProgramNameTaken(t *testing.T) {
	startOperator(t)
	namespace(t, "taken", nil)
	admin := program(t, podprogram.ProgramName("taken", "filter"), "registry.example.com/ebpf/admin:v1", "taken")
	podProgram(t, "taken", "filter", "registry.example.com/ebpf/tenant:v1", "taken")
	waitPodCondition(t, "taken", "filter", v1.ConditionAccepted, metav1.ConditionFalse, v1.ReasonNameTaken)
	if after := get(t, admin.Name); after.Spec.Tenant != nil || after.Spec.Bundle.Image != admin.Spec.Bundle.Image {
		t.Fatalf("the admin's BpfProgram changed: %+v", after.Spec)
	}
}
