package controller_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/registry"
)

// registriesConfig writes the registries config of the private registry
// reg (its CA, credentials user:password) and returns the options an agent
// started with --registries-config gets.
func registriesConfig(t *testing.T, reg *registry.Registry, user, password string) remote.Options {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registries.yaml")
	config := "credentials: " + reg.DockerConfig(t, user, password) + "\nregistries:\n  - host: \"" + reg.Host + "\"\n    ca: " + reg.CAFile(t) + "\n"
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := remote.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := remote.Options{Timeout: 3 * time.Second}
	cfg.Apply(&opts)
	return opts
}

// pushPrivate builds the world's XDP filter bundle at version, pushes it
// to reg's agent/private repository with opts and signs it with the world's
// key; it returns the reference by tag and the digest.
func (w *world) pushPrivate(t *testing.T, reg *registry.Registry, opts remote.Options, version string) (ref, digest string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "progs_bpfel.o"), kernelprog.Object, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := "name: agent-test\nversion: " + version + "\nobjects:\n  - file: progs_bpfel.o\nprograms:\n  - name: " + kernelprog.XDPFilter + "\n    attach: xdp\nmetricMaps: [counters]\n"
	if err := os.WriteFile(filepath.Join(dir, build.SpecFile), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	layout := t.TempDir()
	ctx := context.Background()
	if _, err := build.Build(ctx, dir, build.Options{LayoutDir: layout, Tag: version}); err != nil {
		t.Fatal(err)
	}
	ref = reg.Ref("agent/private", version)
	digest, err := remote.New(opts).Push(ctx, layout, ref)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if err := signing.Sign(ctx, reg.Repository("agent/private")+"@"+digest, w.priv, []byte(password), opts); err != nil {
		t.Fatalf("sign %s: %v", ref, err)
	}
	return ref, digest
}

// TestPrivateRegistryWrongCredentials: an agent pulls from a registry that
// needs credentials and serves TLS with a CA of its own through the
// registries config alone. With wrong credentials, an upgrade is held with
// reason PullFailed and a message naming the refusal, while the filter
// that runs keeps dropping.
func TestPrivateRegistryWrongCredentials(t *testing.T) {
	w := newWorld(t)
	reg := registry.Start(t, registry.Options{Username: "bpfleet", Password: "s3cret", TLS: true})
	good := registriesConfig(t, reg, "bpfleet", "s3cret")
	ctx := context.Background()
	policy := &v1alpha1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "private-" + randHex(4)},
		Spec: v1alpha1.BundleTrustPolicySpec{
			Images: []string{reg.Repository("agent/private")},
			Keys:   []v1alpha1.TrustedKey{{Name: "test", PublicKey: string(w.pub)}},
		},
	}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), policy) })
	ref, v1 := w.pushPrivate(t, reg, good, "0.1.0")
	_, v2 := w.pushPrivate(t, reg, good, "0.2.0")

	a := w.startAgent(t, func(o *controller.Options) { o.Registry = good })
	p := w.createProgram(t, ref, v1, denyEntry(deniedPort))
	w.waitEntry(t, p, "attached from the private registry", attachedAt(v1))
	if got := w.delivered(t, deniedPort, 5); got != 0 {
		t.Fatalf("%d of 5 datagrams delivered to the denied port", got)
	}
	a.stop()

	wrong := registriesConfig(t, reg, "bpfleet", "wrong")
	w.startAgent(t, func(o *controller.Options) { o.Registry = wrong })
	setRollout(t, p, v2, v2, "")
	held := w.waitEntry(t, p, "upgrade held with PullFailed", func(s v1alpha1.ProgramState) bool {
		return s.Reason == v1alpha1.ReasonPullFailed
	})
	if !strings.Contains(held.Message, "registry denied access") || !strings.Contains(held.Message, "401") {
		t.Errorf("PullFailed message %q does not say the registry refused the credentials", held.Message)
	}
	if held.State != v1alpha1.PhaseAttached || held.Digest != v1 {
		t.Errorf("held entry %s at %s, want the running %s still Attached", held.State, held.Digest, v1)
	}
	if got := w.delivered(t, deniedPort, 5); got != 0 {
		t.Errorf("%d of 5 datagrams delivered while the upgrade is held: the running filter must keep dropping", got)
	}
}
