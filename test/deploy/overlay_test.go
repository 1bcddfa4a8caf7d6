package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/operator/trustkeys"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// refusedOwnNode and refusedOwnEvents are what the agent's admission
// policies answer (config/rbac/common/agent_*_policy.yaml).
const (
	refusedOwnNode   = "may only write the BpfNodeState named after its own node"
	refusedOwnEvents = "may only write Events about the BpfNodeState named after its own node"
)

// applyOverlay writes a kustomization that puts config/default into
// namespace ns, as a user's overlay does, applies it, and at cleanup deletes
// the namespace and applies config/rbac again (the overlay rewrote the
// cluster-scoped bindings other tests rely on).
func applyOverlay(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	base, err := filepath.Rel(dir, configDir(t, "default"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("namespace: %s\nresources: [%s]\n", ns, filepath.ToSlash(base))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := env.Kubectl(ctx, "apply", "-k", configDir(t, "rbac")); err != nil {
			t.Errorf("restore config/rbac: %v\n%s", err, out)
		}
		_ = env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	if out, err := env.Kubectl(ctx, "apply", "-k", dir); err != nil {
		t.Fatalf("apply overlay: %v\n%s", err, out)
	}
}

// ownStateEvent is an Event as the agent's recorder writes it about node's
// BpfNodeState (in `default`, where the API server keeps Events about
// cluster-scoped objects).
func ownStateEvent(name, node string) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: "bpfleet-agent",
		ReportingInstance:   "bpfleet-agent-" + node,
		Action:              "Apply",
		Reason:              v1.ReasonBPFFSRemounted,
		Type:                corev1.EventTypeWarning,
		Note:                "bpffs remounted",
		Regarding:           corev1.ObjectReference{APIVersion: v1.GroupVersion.String(), Kind: "BpfNodeState", Name: node},
	}
}

// waitRefused retries write until it fails with an error containing msg:
// a policy or binding takes a moment to reach the admission plugin. An
// object the write created meanwhile is removed by undo.
func waitRefused(t *testing.T, what, msg string, write func() error, undo func()) {
	t.Helper()
	envtest.Eventually(t, 30*time.Second, func() error {
		err := write()
		if err != nil && strings.Contains(err.Error(), msg) {
			return nil
		}
		if err == nil && undo != nil {
			undo()
		}
		return fmt.Errorf("%s: want refused with %q, got %v", what, msg, err)
	})
}

// TestPoliciesFollowANamespaceOverlay installs config/default through a
// kustomize overlay that moves bpfleet into another namespace, and checks on
// the real API server that every admission policy still confines the agent
// of that namespace to its own node, its own Events, and the trust-keys
// Role to get on named Secrets. With a namespace written into the policies
// they would match nobody after the overlay, and every write here would pass.
func TestPoliciesFollowANamespaceOverlay(t *testing.T) {
	ensureNamespace(t) // for the cleanup's config/rbac
	ctx := context.Background()
	const ns = "bpfleet-overlaid"
	applyOverlay(t, ns)
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	agent := impersonate(t, "system:serviceaccount:"+ns+":bpfleet-agent", groups, map[string][]string{nodeExtra: {"ovl-a"}})

	t.Run("own node state only", func(t *testing.T) {
		waitRefused(t, "create another node's state", refusedOwnNode, func() error {
			return agent.Create(ctx, &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "ovl-b"}})
		}, func() { _ = env.Client.Delete(ctx, &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "ovl-b"}}) })
		own := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "ovl-a"}}
		if err := agent.Create(ctx, own); err != nil {
			t.Fatalf("the overlaid agent may not create its own state: %v", err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, own) })
		own.Status.Kernel.Release = "6.18.0"
		if err := agent.Status().Update(ctx, own); err != nil {
			t.Fatalf("the overlaid agent may not write its own status: %v", err)
		}
	})

	t.Run("own events only", func(t *testing.T) {
		waitRefused(t, "an Event about another node's state", refusedOwnEvents, func() error {
			return agent.Create(ctx, ownStateEvent("ovl-forged", "ovl-b"))
		}, func() { _ = env.Client.Delete(ctx, ownStateEvent("ovl-forged", "ovl-b")) })
		ev := ownStateEvent("ovl-own", "ovl-a")
		if err := agent.Create(ctx, ev); err != nil {
			t.Fatalf("the overlaid agent may not report on its own state: %v", err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, ev) })
	})

	t.Run("trust-keys Role confined", func(t *testing.T) {
		role := &rbacv1.Role{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: trustkeys.RoleName}, role); err != nil {
			t.Fatalf("the overlay did not move the trust-keys Role: %v", err)
		}
		waitRefused(t, "grant every Secret through the trust-keys Role", refusedByTrustKeysPolicy, func() error {
			r := role.DeepCopy()
			r.Rules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}
			return env.Client.Update(ctx, r)
		}, func() {
			r := &rbacv1.Role{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(role), r); err == nil {
				r.Rules = nil
				_ = env.Client.Update(ctx, r)
			}
		})
		r := &rbacv1.Role{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(role), r); err != nil {
			t.Fatal(err)
		}
		r.Rules = getSecrets("cosign-pub")
		if err := env.Client.Update(ctx, r); err != nil {
			t.Fatalf("the trust-keys Role may not name a Secret: %v", err)
		}
	})

	// The workloads read trust-policy keys from the namespace they run in.
	for _, kind := range []string{"deployment/bpfleet-operator", "daemonset/bpfleet-agent"} {
		out, err := env.Kubectl(ctx, "get", "-n", ns, kind, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var w struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal([]byte(out), &w); err != nil {
			t.Fatal(err)
		}
		c := w.Spec.Template.Spec.Containers[0]
		if !slices.Contains(c.Args, "--trust-namespace=$(POD_NAMESPACE)") || !podNamespaceEnv(c.Env) {
			t.Errorf("%s does not take its trust namespace from its own (args %q)", kind, c.Args)
		}
	}
}

func podNamespaceEnv(envs []corev1.EnvVar) bool {
	for _, e := range envs {
		if e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
			return true
		}
	}
	return false
}
