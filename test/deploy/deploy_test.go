// Package deploy_test checks the kustomize tree in config/ against a real
// apiserver: the manifests are valid, and RBAC plus the admission policy
// confine each agent to its own node.
package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

var env *envtest.Env

func TestMain(m *testing.M) { os.Exit(envtest.Run(m, &env)) }

const (
	namespace = "bpfleet-system"
	agentSA   = "system:serviceaccount:bpfleet-system:bpfleet-agent"
	opSA      = "system:serviceaccount:bpfleet-system:bpfleet-operator"
	nodeExtra = "authentication.kubernetes.io/node-name"
)

func configDir(t *testing.T, sub string) string {
	t.Helper()
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "config", sub)
}

func ensureNamespace(t *testing.T) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestDefaultManifestsAreValid applies config/default with a server-side dry
// run: every object passes the real apiserver's validation and defaulting.
func TestDefaultManifestsAreValid(t *testing.T) {
	ensureNamespace(t)
	out, err := env.Kubectl(context.Background(), "apply", "--dry-run=server", "-k", configDir(t, "default"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"deployment.apps/bpfleet-operator", "daemonset.apps/bpfleet-agent",
		"clusterrole.rbac.authorization.k8s.io/bpfleet-agent", "validatingadmissionpolicy.admissionregistration.k8s.io/bpfleet-agent-own-node",
		"customresourcedefinition.apiextensions.k8s.io/bpfprograms.bpfleet.io",
		"role.rbac.authorization.k8s.io/bpfleet-trust-keys", "validatingadmissionpolicy.admissionregistration.k8s.io/bpfleet-trust-keys",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %s:\n%s", want, out)
		}
	}
}

func impersonate(t *testing.T, user string, groups []string, extra map[string][]string) client.WithWatch {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups, Extra: extra}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func saGroups() []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
}

// TestAgentIsConfinedToItsOwnNode impersonates the agent's service account as
// its bound token would present it (with the node-name extra).
func TestAgentIsConfinedToItsOwnNode(t *testing.T) {
	ensureNamespace(t)
	ctx := context.Background()
	if out, err := env.Kubectl(ctx, "apply", "-k", configDir(t, "rbac")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	agentA := impersonate(t, agentSA, saGroups(), map[string][]string{nodeExtra: {"node-a"}})
	noNode := impersonate(t, agentSA, saGroups(), nil)

	// The policy binding takes a moment to reach the admission plugin.
	own := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		other := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}
		err := agentA.Create(ctx, other)
		if err != nil && strings.Contains(err.Error(), "may only write the BpfNodeState named after its own node") {
			break
		}
		if err == nil {
			_ = env.Client.Delete(ctx, other)
		}
		if time.Now().After(deadline) {
			t.Fatalf("admission policy never refused another node's object; last error: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if err := agentA.Create(ctx, own); err != nil {
		t.Fatalf("agent may not create its own node state: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, own) })
	own.Status.Kernel.Release = "6.18.0"
	if err := agentA.Status().Update(ctx, own); err != nil {
		t.Fatalf("agent may not update its own status: %v", err)
	}

	// Another node's existing object: status writes are refused too.
	otherObj := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}}
	if err := env.Client.Create(ctx, otherObj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, otherObj) })
	otherObj.Status.Kernel.Release = "forged"
	if err := agentA.Status().Update(ctx, otherObj); err == nil || !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
		t.Fatalf("agent wrote another node's status: %v", err)
	}
	if err := agentA.Delete(ctx, otherObj); err == nil {
		t.Fatal("agent deleted another node's state")
	}

	// A token without the node-name claim writes nothing.
	if err := noNode.Create(ctx, &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node-d"}}); err == nil {
		t.Fatal("agent without a node-name claim created a node state")
	}

	// RBAC: the agent reads BpfProgramTargets (what the operator tells it
	// of each BpfProgram), not BpfPrograms, and changes neither.
	var targets v1.BpfProgramTargetList
	if err := agentA.List(ctx, &targets); err != nil {
		t.Fatalf("agent may not list bpfprogramtargets: %v", err)
	}
	var progs v1.BpfProgramList
	if err := agentA.List(ctx, &progs); !apierrors.IsForbidden(err) {
		t.Fatalf("agent list bpfprograms: want Forbidden, got %v", err)
	}
	prog := &v1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "forged"},
		Spec: v1.BpfProgramSpec{
			Bundle:   v1.BundleSource{Image: "r.example.com/x/y:v1"},
			Programs: []v1.ProgramAttachment{{Name: "p", Tracepoint: &v1.TracepointAttach{Group: "sched", Name: "sched_switch"}}},
		},
	}
	if err := agentA.Create(ctx, prog); !apierrors.IsForbidden(err) {
		t.Fatalf("agent create bpfprogram: want Forbidden, got %v", err)
	}
	// An existing BpfProgram: no verb that changes it, its status (where the
	// operator tells nodes which digest to run) or a trust policy is allowed.
	if err := env.Client.Create(ctx, prog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, prog) })
	policy := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy-confined"},
		Spec:       v1.BundleTrustPolicySpec{Images: []string{"r.example.com/x/*"}, AllowUnsigned: true},
	}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, policy) })
	writes := []struct {
		name  string
		write func() error
	}{
		{name: "update bpfprogram", write: func() error {
			p := prog.DeepCopy()
			p.Spec.Bundle.Image = "evil.example.com/x/y:v1"
			return agentA.Update(ctx, p)
		}},
		{name: "patch bpfprogram", write: func() error {
			return agentA.Patch(ctx, prog.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"bundle":{"image":"evil.example.com/x/y:v1"}}}`)))
		}},
		{name: "write bpfprogram status", write: func() error {
			p := prog.DeepCopy()
			p.Status.ResolvedDigest = "sha256:" + strings.Repeat("e", 64)
			return agentA.Status().Update(ctx, p)
		}},
		{name: "delete bpfprogram", write: func() error { return agentA.Delete(ctx, prog.DeepCopy()) }},
		{name: "delete all bpfprograms", write: func() error { return agentA.DeleteAllOf(ctx, &v1.BpfProgram{}) }},
		{name: "create bpfprogramtarget", write: func() error {
			return agentA.Create(ctx, &v1.BpfProgramTarget{ObjectMeta: metav1.ObjectMeta{Name: "forged"},
				Spec: v1.BpfProgramTargetSpec{ProgramUID: "u", Program: prog.Spec}})
		}},
		{name: "patch bpfprogramtarget", write: func() error {
			return agentA.Patch(ctx, &v1.BpfProgramTarget{ObjectMeta: metav1.ObjectMeta{Name: prog.Name}},
				client.RawPatch(types.MergePatchType, []byte(`{"spec":{"resolvedDigest":"sha256:`+strings.Repeat("e", 64)+`"}}`)))
		}},
		{name: "update trust policy", write: func() error {
			p := policy.DeepCopy()
			p.Spec.Images = []string{"**"}
			return agentA.Update(ctx, p)
		}},
		{name: "create trust policy", write: func() error {
			return agentA.Create(ctx, &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: "forged"},
				Spec: v1.BundleTrustPolicySpec{Images: []string{"**"}, AllowUnsigned: true}})
		}},
	}
	for _, w := range writes {
		if err := w.write(); !apierrors.IsForbidden(err) {
			t.Errorf("agent may %s: want Forbidden, got %v", w.name, err)
		}
	}
}

// TestOperatorCannotReadSecretsElsewhere checks the operator's and agents'
// accounts read no Secret outside the namespace trust-policy keys live in,
// none there that no policy names (the trust-keys Role starts empty), and
// list, watch or write none at all.
func TestOperatorCannotReadSecretsElsewhere(t *testing.T) {
	ensureNamespace(t)
	ctx := context.Background()
	if out, err := env.Kubectl(ctx, "apply", "-k", configDir(t, "rbac")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Whatever an earlier test left: the Role as the operator writes it when
	// no policy names a Secret.
	setTrustKeysRole(t, nil)
	for _, sa := range []string{opSA, agentSA} {
		c := impersonate(t, sa, saGroups(), nil)
		for _, tc := range secretAccessCases(namespace, "cosign-pub") {
			if err := tc.do(ctx, c); !apierrors.IsForbidden(err) {
				t.Errorf("%s %s of an unreferenced Secret: want Forbidden, got %v", sa, tc.name, err)
			}
		}
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "any"}, &s); !apierrors.IsForbidden(err) {
			t.Errorf("%s get a secret in kube-system: want Forbidden, got %v", sa, err)
		}
	}
	op := impersonate(t, opSA, saGroups(), nil)
	var nodes corev1.NodeList
	if err := op.List(ctx, &nodes); err != nil {
		t.Fatalf("operator may not list nodes: %v", err)
	}
}
