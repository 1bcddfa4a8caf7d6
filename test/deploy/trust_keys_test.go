package deploy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/operator/trustkeys"
	"github.com/bpfleet/bpfleet/operator/trustpolicy"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// refusedByTrustKeysPolicy is what config/rbac/common/trust_keys_policy.yaml
// answers.
const refusedByTrustKeysPolicy = "may only grant get on Secrets by name"

func getSecrets(names ...string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: names}}
}

func trustKeysRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	role := &rbacv1.Role{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: trustkeys.RoleName}, role); err != nil {
		t.Fatal(err)
	}
	return role
}

// setTrustKeysRole writes the Role as cluster admin, as the reconciler would
// for policies naming these Secrets (none: no rule).
func setTrustKeysRole(t *testing.T, names []string) {
	t.Helper()
	role := trustKeysRole(t)
	role.Rules = nil
	if len(names) > 0 {
		role.Rules = getSecrets(names...)
	}
	if err := env.Client.Update(context.Background(), role); err != nil {
		t.Fatal(err)
	}
}

func waitTrustKeysRules(t *testing.T, want []rbacv1.PolicyRule) {
	t.Helper()
	envtest.Eventually(t, 30*time.Second, func() error {
		got := trustKeysRole(t).Rules
		if len(got) == 0 && len(want) == 0 || equality.Semantic.DeepEqual(got, want) {
			return nil
		}
		return fmt.Errorf("trust-keys Role rules %+v, want %+v", got, want)
	})
}

type secretAccess struct {
	name string
	do   func(ctx context.Context, c client.WithWatch) error
}

// secretAccessCases are the ways to reach the Secret ns/name: get first,
// then everything that trust-keys RBAC never grants, whatever the Role names.
func secretAccessCases(ns, name string) []secretAccess {
	key := client.ObjectKey{Namespace: ns, Name: name}
	obj := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	return []secretAccess{
		{name: "get", do: func(ctx context.Context, c client.WithWatch) error { return c.Get(ctx, key, obj()) }},
		{name: "list", do: func(ctx context.Context, c client.WithWatch) error {
			return c.List(ctx, &corev1.SecretList{}, client.InNamespace(ns))
		}},
		{name: "list by name", do: func(ctx context.Context, c client.WithWatch) error {
			return c.List(ctx, &corev1.SecretList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": name})
		}},
		{name: "watch by name", do: func(ctx context.Context, c client.WithWatch) error {
			w, err := c.Watch(ctx, &corev1.SecretList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": name})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{name: "create", do: func(ctx context.Context, c client.WithWatch) error {
			s := obj()
			s.Name += "-forged"
			return c.Create(ctx, s)
		}},
		{name: "create with its name", do: func(ctx context.Context, c client.WithWatch) error { return c.Create(ctx, obj()) }},
		{name: "patch", do: func(ctx context.Context, c client.WithWatch) error {
			return c.Patch(ctx, obj(), client.RawPatch(types.MergePatchType, []byte(`{"data":{"cosign.pub":"Zm9yZ2Vk"}}`)))
		}},
		{name: "update", do: func(ctx context.Context, c client.WithWatch) error {
			s := obj()
			s.Data = map[string][]byte{"cosign.pub": []byte("forged")}
			return c.Update(ctx, s)
		}},
		{name: "delete", do: func(ctx context.Context, c client.WithWatch) error { return c.Delete(ctx, obj()) }},
	}
}

func publicKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

var setLogger sync.Once

// startOperatorPart runs a manager as the operator's service account with
// what setup adds, until the test ends: the reconcilers get exactly the
// operator's RBAC.
func startOperatorPart(t *testing.T, setup func(ctrl.Manager) error) {
	t.Helper()
	setLogger.Do(func() { ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel))) })
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: opSA, Groups: saGroups()}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     env.Scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := setup(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

func policyReady(t *testing.T, name string) (*metav1.Condition, int32) {
	t.Helper()
	p := &v1.BundleTrustPolicy{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, p); err != nil {
		t.Fatal(err)
	}
	if p.Status.ObservedGeneration != p.Generation {
		return nil, 0
	}
	return meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady), p.Status.KeyCount
}

// TestTrustKeysRoleGrantsReferencedSecretsOnly runs the trust policy and
// trust-keys reconcilers as the operator's account against config/rbac: the
// Role names exactly the Secrets policies reference, both accounts can get
// those and nothing else, and access goes with the policy.
func TestTrustKeysRoleGrantsReferencedSecretsOnly(t *testing.T) {
	ensureNamespace(t)
	ctx := context.Background()
	if out, err := env.Kubectl(ctx, "apply", "-k", configDir(t, "rbac")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	setTrustKeysRole(t, nil)
	for _, name := range []string{"ref-key", "unref-key"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Data: map[string][]byte{trust.DefaultSecretKey: publicKeyPEM(t)}}
		if err := env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, s) })
	}
	clients := map[string]client.WithWatch{
		"operator": impersonate(t, opSA, saGroups(), nil),
		"agent":    impersonate(t, agentSA, saGroups(), map[string][]string{nodeExtra: {"node-a"}}),
	}

	// The policy reconciler alone first: the Role does not name the Secret
	// yet, so reading it is Forbidden, said so in Ready, and retried.
	startOperatorPart(t, func(mgr ctrl.Manager) error {
		r := &trustpolicy.Reconciler{Client: mgr.GetClient(), Keys: trust.SecretKeys(mgr.GetAPIReader(), namespace),
			Recorder: mgr.GetEventRecorder("bpfleet-operator")}
		return r.SetupWithManager(ctx, mgr)
	})
	newPolicy := func(name string, secrets ...string) *v1.BundleTrustPolicy {
		p := &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.BundleTrustPolicySpec{Images: []string{"r.example.com/" + name + "/*"}}}
		for _, s := range secrets {
			p.Spec.Keys = append(p.Spec.Keys, v1.TrustedKey{Name: s, SecretRef: &v1.SecretKeyRef{Namespace: namespace, Name: s}})
		}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
		return p
	}
	first := newPolicy("deploy-trust-keys", "ref-key")
	envtest.Eventually(t, 30*time.Second, func() error {
		if c, _ := policyReady(t, first.Name); c == nil || c.Reason != v1.ReasonSecretForbidden || !strings.Contains(c.Message, "forbidden") {
			return fmt.Errorf("Ready %+v, want %s", c, v1.ReasonSecretForbidden)
		}
		return nil
	})

	// Now the trust-keys reconciler: the Role names the Secret, and the
	// policy reconciler's retry reads it.
	startOperatorPart(t, func(mgr ctrl.Manager) error {
		r := &trustkeys.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: namespace}
		return r.SetupWithManager(ctx, mgr)
	})
	waitTrustKeysRules(t, getSecrets("ref-key"))
	envtest.Eventually(t, 30*time.Second, func() error {
		if c, n := policyReady(t, first.Name); c == nil || c.Status != metav1.ConditionTrue || n != 1 {
			return fmt.Errorf("Ready %+v keyCount %d, want True and 1", c, n)
		}
		return nil
	})

	for who, c := range clients {
		for _, tc := range secretAccessCases(namespace, "ref-key") {
			err := tc.do(ctx, c)
			if tc.name == "get" {
				if err != nil {
					t.Errorf("%s get of the referenced Secret: %v", who, err)
				}
			} else if !apierrors.IsForbidden(err) {
				t.Errorf("%s %s of the referenced Secret: want Forbidden, got %v", who, tc.name, err)
			}
		}
		for _, tc := range secretAccessCases(namespace, "unref-key") {
			if err := tc.do(ctx, c); !apierrors.IsForbidden(err) {
				t.Errorf("%s %s of an unreferenced Secret: want Forbidden, got %v", who, tc.name, err)
			}
		}
	}

	// The Role watch: an edit by hand is put back at once.
	setTrustKeysRole(t, []string{"ref-key", "unref-key"})
	waitTrustKeysRules(t, getSecrets("ref-key"))

	// A second policy adds its Secret; deleting the policies takes access away.
	second := newPolicy("deploy-trust-keys-2", "unref-key", "ref-key")
	waitTrustKeysRules(t, getSecrets("ref-key", "unref-key"))
	envtest.Eventually(t, 30*time.Second, func() error {
		return clients["agent"].Get(ctx, client.ObjectKey{Namespace: namespace, Name: "unref-key"}, &corev1.Secret{})
	})
	if err := env.Client.Delete(ctx, second); err != nil {
		t.Fatal(err)
	}
	waitTrustKeysRules(t, getSecrets("ref-key"))
	if err := env.Client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	waitTrustKeysRules(t, nil)
	for who, c := range clients {
		envtest.Eventually(t, 30*time.Second, func() error {
			if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "ref-key"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
				return fmt.Errorf("%s get of a Secret no policy names any more: want Forbidden, got %v", who, err)
			}
			return nil
		})
	}
}

// TestTrustKeysRoleAdmission: the operator may rewrite the trust-keys Role
// (it has escalate on it), but the admission policy lets nobody, cluster
// admins included, put anything in it but get on named Secrets.
func TestTrustKeysRoleAdmission(t *testing.T) {
	ensureNamespace(t)
	ctx := context.Background()
	if out, err := env.Kubectl(ctx, "apply", "-k", configDir(t, "rbac")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { setTrustKeysRole(t, nil) })
	writers := map[string]client.Client{"operator": impersonate(t, opSA, saGroups(), nil), "admin": env.Client}
	write := func(c client.Client, rules []rbacv1.PolicyRule) error {
		role := trustKeysRole(t)
		role.Rules = rules
		return c.Update(ctx, role)
	}
	secret := func(verbs, resources, groups, names []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs, ResourceNames: names}
	}
	core, secrets, get, a := []string{""}, []string{"secrets"}, []string{"get"}, []string{"a"}
	broader := []struct {
		name  string
		rules []rbacv1.PolicyRule
	}{
		{name: "verbs list", rules: []rbacv1.PolicyRule{secret([]string{"list"}, secrets, core, a)}},
		{name: "verbs get and watch", rules: []rbacv1.PolicyRule{secret([]string{"get", "watch"}, secrets, core, a)}},
		{name: "verbs *", rules: []rbacv1.PolicyRule{secret([]string{"*"}, secrets, core, a)}},
		{name: "resources *", rules: []rbacv1.PolicyRule{secret(get, []string{"*"}, core, a)}},
		{name: "resources secrets and configmaps", rules: []rbacv1.PolicyRule{secret(get, []string{"secrets", "configmaps"}, core, a)}},
		{name: "apiGroups *", rules: []rbacv1.PolicyRule{secret(get, secrets, []string{"*"}, a)}},
		{name: "no resourceNames: every Secret", rules: []rbacv1.PolicyRule{secret(get, secrets, core, nil)}},
		{name: "empty resourceName", rules: []rbacv1.PolicyRule{secret(get, secrets, core, []string{""})}},
		{name: "a broad rule after a good one", rules: []rbacv1.PolicyRule{secret(get, secrets, core, a), secret(get, secrets, core, nil)}},
	}

	// The policy binding takes a moment to reach the admission plugin.
	envtest.Eventually(t, 30*time.Second, func() error {
		err := write(env.Client, broader[0].rules)
		if err != nil && strings.Contains(err.Error(), refusedByTrustKeysPolicy) {
			return nil
		}
		return fmt.Errorf("admission policy not enforced yet: %v", err)
	})

	for _, tc := range broader {
		for who, c := range writers {
			if err := write(c, tc.rules); err == nil || !strings.Contains(err.Error(), refusedByTrustKeysPolicy) {
				t.Errorf("%s writes %s into %s: want refused by the admission policy, got %v", who, tc.name, trustkeys.RoleName, err)
			}
		}
		// Creating it so (dry run: it exists) is refused too.
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: trustkeys.RoleName}, Rules: tc.rules}
		if err := env.Client.Create(ctx, role, client.DryRunAll); err == nil || !strings.Contains(err.Error(), refusedByTrustKeysPolicy) {
			t.Errorf("admin creates %s with %s: want refused by the admission policy, got %v", trustkeys.RoleName, tc.name, err)
		}
	}

	// What the reconciler writes passes: the operator holds no Secret, so
	// only escalate lets RBAC accept it.
	for _, names := range [][]string{{"a", "b"}, nil} {
		rules := []rbacv1.PolicyRule(nil)
		if names != nil {
			rules = getSecrets(names...)
		}
		if err := write(writers["operator"], rules); err != nil {
			t.Errorf("operator writes get on Secrets %q: %v", names, err)
		}
	}
	// Other Roles are not this policy's business.
	other := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "not-trust-keys"},
		Rules: []rbacv1.PolicyRule{secret([]string{"list"}, secrets, core, nil)}}
	if err := env.Client.Create(ctx, other, client.DryRunAll); err != nil {
		t.Errorf("admin creates another Role: %v", err)
	}
	// And the operator may touch no other Role.
	if err := writers["operator"].Create(ctx, other, client.DryRunAll); !apierrors.IsForbidden(err) {
		t.Errorf("operator creates a Role: want Forbidden, got %v", err)
	}
}
