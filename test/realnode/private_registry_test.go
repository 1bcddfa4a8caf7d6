package realnode

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestPrivateRegistryOnRealNode: the operator and the agent pods pull from
// a registry that needs basic auth and serves TLS with a CA of its own,
// configured as docs/operations.md says: the image-pull Secret
// bpfleet-registry-credentials, the CA in the ConfigMap bpfleet-registry-ca
// and a host entry in bpfleet-registries, then a rollout restart. The
// suite's overlay also passes the global --registry-insecure: the host's
// entry, not the flag, decides how it is verified. With wrong credentials
// the agent holds the upgrade with PullFailed and the program that runs
// keeps running; good credentials again let the upgrade through.
func TestPrivateRegistryOnRealNode(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	const user, password = "bpfleet", "realnode-s3cret"
	reg := registry.Start(t, registry.Options{Username: user, Password: password, TLS: true, Addr: e.c.NodeIP + ":0"})
	caFile := reg.CAFile(t)
	push := remote.Options{Timeout: 10 * time.Second, DockerConfig: reg.DockerConfig(t, user, password),
		Registries: []remote.Registry{{Host: reg.Host, CA: caFile}}}
	ref, d1 := testbundle.PushWith(t, reg, "private/tracer", "v1", testbundle.Source{Return: 2}, push)
	_, d2 := testbundle.PushWith(t, reg, "private/tracer", "v2", testbundle.Source{Return: 2, Version: "0.2.0"}, push)
	priv, pub, err := signing.GenerateKeyPair(t.TempDir(), []byte(keyPassword))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{d1, d2} {
		if err := signing.Sign(ctx, reg.Repository("private/tracer")+"@"+d, priv, []byte(keyPassword), push); err != nil {
			t.Fatalf("sign %s: %v", d, err)
		}
	}
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	policy := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "realnode-private"},
		Spec: v1.BundleTrustPolicySpec{
			Images: []string{reg.Repository("private/tracer")},
			Keys:   []v1.TrustedKey{{Name: "private", PublicKey: string(pubPEM)}},
		},
	}
	if err := e.client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), policy) })

	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	var original corev1.ConfigMap
	if err := e.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "bpfleet-registries"}, &original); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		var cur corev1.ConfigMap
		if err := e.client.Get(bg, client.ObjectKeyFromObject(&original), &cur); err != nil {
			t.Errorf("read the registries config: %v", err)
		} else if cur.Data = original.Data; e.client.Update(bg, &cur) != nil {
			t.Errorf("restore the registries config")
		}
		_ = e.client.Delete(bg, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "bpfleet-registry-credentials"}})
		_ = e.client.Delete(bg, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "bpfleet-registry-ca"}})
		e.restart(t, "deployment/"+operatorDep, "daemonset/"+agentDS)
	})
	if err := e.client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "bpfleet-registry-ca"},
		Data:       map[string]string{"ca.crt": string(ca)},
	}); err != nil {
		t.Fatal(err)
	}
	e.setRegistryCredentials(t, reg, user, password)
	cfg := original.DeepCopy()
	cfg.Data["registries.yaml"] = fmt.Sprintf("credentials: /etc/bpfleet/registry-credentials/.dockerconfigjson\nregistries:\n  - host: %q\n    ca: /etc/bpfleet/registry-ca/ca.crt\n", reg.Host)
	if err := e.client.Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.restart(t, "deployment/"+operatorDep, "daemonset/"+agentDS)

	const name = "realnode-private"
	e.apply(t, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BpfProgram
metadata: {name: %s}
spec:
  bundle: {image: %q}
  programs:
    - name: %s
      tracepoint: {group: syscalls, name: sys_enter_openat}
`, name, ref, testbundle.TracepointProgram))
	e.deleteProgram(t, name)
	rows := e.waitAttached(t, name, 1, 2*time.Minute)
	if rows[0].Digest != d1 {
		t.Fatalf("attached %s, want %s", rows[0].Digest, d1)
	}
	running := rows[0].ID

	// Wrong credentials for the agent only (the operator keeps the good
	// ones it read at start, so it verifies v2 and rolls it out).
	e.setRegistryCredentials(t, reg, user, "wrong")
	e.restart(t, "daemonset/"+agentDS)
	e.kubectl(t, "patch", "bpfprogram", name, "--type=merge", "-p", fmt.Sprintf(`{"spec":{"bundle":{"image":%q}}}`, reg.Ref("private/tracer", "v2")))
	var held v1.ProgramState
	envtest.Eventually(t, 2*time.Minute, func() error {
		rows := e.entries(t, name)
		if len(rows) != 1 || rows[0].Reason != v1.ReasonPullFailed {
			return fmt.Errorf("want one row held with PullFailed, got %+v", rows)
		}
		held = rows[0]
		return nil
	})
	if !strings.Contains(held.Message, "registry denied access") || !strings.Contains(held.Message, "401") {
		t.Errorf("PullFailed message %q does not say the registry refused the credentials", held.Message)
	}
	if held.State != v1.PhaseAttached || held.Digest != d1 {
		t.Errorf("held row %s at %s, want %s still Attached", held.State, held.Digest, d1)
	}
	if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(running)); err != nil {
		t.Errorf("program %d that ran before the upgrade was held is gone: %v", running, err)
	} else {
		prog.Close()
	}

	e.setRegistryCredentials(t, reg, user, password)
	e.restart(t, "daemonset/"+agentDS)
	envtest.Eventually(t, 2*time.Minute, func() error {
		rows := e.entries(t, name)
		if len(rows) != 1 || rows[0].State != v1.PhaseAttached || rows[0].Digest != d2 {
			return fmt.Errorf("want %s Attached with good credentials again, got %+v", d2, rows)
		}
		return nil
	})
}

// setRegistryCredentials writes the image-pull Secret
// bpfleet-registry-credentials for reg with user and password.
func (e *env) setRegistryCredentials(t *testing.T, reg *registry.Registry, user, password string) {
	t.Helper()
	config, err := os.ReadFile(reg.DockerConfig(t, user, password))
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "bpfleet-registry-credentials"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: config},
	}
	ctx := context.Background()
	var cur corev1.Secret
	if err = e.client.Get(ctx, client.ObjectKeyFromObject(s), &cur); err == nil {
		cur.Data = s.Data
		err = e.client.Update(ctx, &cur)
	} else {
		err = e.client.Create(ctx, s)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// restart rolls the workloads (kind/name in bpfleet's namespace) and waits
// until each runs new, ready pods: they read the registries config, the
// Secret and the CA at start.
func (e *env) restart(t testing.TB, workloads ...string) {
	t.Helper()
	e.kubectl(t, append([]string{"-n", namespace, "rollout", "restart"}, workloads...)...)
	for _, w := range workloads {
		e.kubectl(t, "-n", namespace, "rollout", "status", w, "--timeout=3m")
	}
	// rollout status returns once the new pods are ready; the old ones may
	// still be terminating, and later tests read every pod's containers.
	envtest.Eventually(t, 2*time.Minute, func() error {
		var pods corev1.PodList
		if err := e.client.List(context.Background(), &pods, client.InNamespace(namespace)); err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				return fmt.Errorf("pod %s still terminating", p.Name)
			}
		}
		return nil
	})
}
