package remote_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfig(t *testing.T) {
	reg := registry.Start(t, registry.Options{TLS: true})
	ca := reg.CAFile(t)
	notPEM := writeFile(t, "ca.crt", "not a certificate")
	tests := []struct {
		name, config string
		want         string // "" when valid; else a part of the error
	}{
		{"valid", "credentials: /x/.dockerconfigjson\nregistries:\n  - {host: \"r.example.com:5000\", ca: " + ca + "}\n  - {host: 10.0.0.5, plainHTTP: true}\n  - {host: lab.example.com, insecureSkipVerify: true}\n", ""},
		{"empty", "registries: []\n", ""},
		{"unknown field", "registries:\n  - {host: r.example.com, plain: true}\n", "unknown field"},
		{"scheme in host", "registries:\n  - {host: \"https://r.example.com\"}\n", "not host[:port]"},
		{"path in host", "registries:\n  - {host: r.example.com/team}\n", "not host[:port]"},
		{"no host", "registries:\n  - {plainHTTP: true}\n", "not host[:port]"},
		{"twice", "registries:\n  - {host: r.example.com}\n  - {host: r.example.com}\n", "listed twice"},
		{"plain with CA", "registries:\n  - {host: r.example.com, plainHTTP: true, ca: " + ca + "}\n", "plainHTTP has no TLS"},
		{"CA missing", "registries:\n  - {host: r.example.com, ca: /nonexistent/ca.crt}\n", "read CA bundle"},
		{"CA not PEM", "registries:\n  - {host: r.example.com, ca: " + notPEM + "}\n", "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := remote.LoadConfig(writeFile(t, "registries.yaml", tt.config))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("LoadConfig: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, remote.ErrConfigInvalid)):
				t.Fatalf("LoadConfig error %v, want ErrConfigInvalid with %q", err, tt.want)
			}
		})
	}
}

// privateRegistry starts a loopback registry behind basic auth and TLS with
// a test CA, and returns it with the registries config for it (the
// credentials given, the CA as the host's CA bundle).
func privateRegistry(t *testing.T, user, password string) (*registry.Registry, remote.Options) {
	t.Helper()
	reg := registry.Start(t, registry.Options{Username: "bpfleet", Password: "s3cret", TLS: true})
	creds := reg.DockerConfig(t, user, password)
	path := writeFile(t, "registries.yaml", "credentials: "+creds+"\nregistries:\n  - host: \""+reg.Host+"\"\n    ca: "+reg.CAFile(t)+"\n")
	cfg, err := remote.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := remote.Options{Timeout: 5 * time.Second}
	cfg.Apply(&opts)
	return reg, opts
}

// TestPrivateRegistry: pushes, pulls and signatures go to a registry that
// needs credentials and serves TLS with a CA of its own, through the
// registries config alone; without its CA the TLS handshake fails, and
// with wrong credentials every operation fails with ErrRegistryDenied.
func TestPrivateRegistry(t *testing.T) {
	reg, opts := privateRegistry(t, "bpfleet", "s3cret")
	ctx := context.Background()
	ref, digest := testbundle.PushWith(t, reg, "ebpf/private", "v1", testbundle.Source{}, opts)
	keyDir := t.TempDir()
	priv, pub, err := signing.GenerateKeyPair(keyDir, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.Sign(ctx, reg.Repository("ebpf/private")+"@"+digest, priv, []byte("pw"), opts); err != nil {
		t.Fatalf("sign over TLS with credentials: %v", err)
	}
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}

	c := remote.New(opts)
	if got, err := c.Resolve(ctx, ref); err != nil || got != digest {
		t.Fatalf("Resolve = %s, %v; want %s", got, err, digest)
	}
	if _, err := c.Fetch(ctx, reg.Repository("ebpf/private"), digest); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if idx, err := signing.VerifyKeys(ctx, reg.Repository("ebpf/private"), digest, [][]byte{pubPEM}, opts); err != nil || len(idx) != 1 {
		t.Fatalf("VerifyKeys = %v, %v; want key 0", idx, err)
	}

	noCA := opts
	noCA.Registries = []remote.Registry{{Host: reg.Host}} // HTTPS, system roots
	if _, err := remote.New(noCA).Resolve(ctx, ref); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Resolve without the registry's CA: %v, want a certificate error", err)
	}

	// The host's entry, not the global --registry-insecure, decides how it
	// is verified: a CA that did not sign its certificate is refused.
	otherCA := registry.Start(t, registry.Options{TLS: true}).CAFile(t) // each test registry has a CA of its own
	globalInsecure := opts
	globalInsecure.Insecure = true
	globalInsecure.Registries = []remote.Registry{{Host: reg.Host, CA: otherCA}}
	if _, err := remote.New(globalInsecure).Resolve(ctx, ref); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Resolve under global Insecure with another CA in the host's entry: %v, want a certificate error", err)
	}

	_, wrong := privateRegistryConfig(t, reg, "bpfleet", "wrong")
	if _, err := remote.New(wrong).Resolve(ctx, ref); !errors.Is(err, bundles.ErrRegistryDenied) {
		t.Errorf("Resolve with wrong credentials: %v, want ErrRegistryDenied", err)
	}
	if _, err := remote.New(wrong).Fetch(ctx, reg.Repository("ebpf/private"), digest); !errors.Is(err, bundles.ErrRegistryDenied) {
		t.Errorf("Fetch with wrong credentials: %v, want ErrRegistryDenied", err)
	}
	if _, err := signing.VerifyKeys(ctx, reg.Repository("ebpf/private"), digest, [][]byte{pubPEM}, wrong); !errors.Is(err, bundles.ErrRegistryDenied) {
		t.Errorf("VerifyKeys with wrong credentials: %v, want ErrRegistryDenied", err)
	}
}

// privateRegistryConfig is the registries config of privateRegistry for an
// already running reg, with other credentials.
func privateRegistryConfig(t *testing.T, reg *registry.Registry, user, password string) (string, remote.Options) {
	t.Helper()
	path := writeFile(t, "registries.yaml", "credentials: "+reg.DockerConfig(t, user, password)+"\nregistries:\n  - host: \""+reg.Host+"\"\n    ca: "+reg.CAFile(t)+"\n")
	cfg, err := remote.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := remote.Options{Timeout: 5 * time.Second}
	cfg.Apply(&opts)
	return path, opts
}

// TestFetchManifestReadsNoLayer: what the operator reads of a bundle is
// its image manifest and config blob; the registry serves no ELF layer.
func TestFetchManifestReadsNoLayer(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, digest := testbundle.Push(t, reg, "ebpf/manifest-only", "v1", testbundle.Source{})
	c := remote.New(remote.Options{})
	ctx := context.Background()
	b, err := c.Fetch(ctx, reg.Repository("ebpf/manifest-only"), digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		t.Fatal(err)
	}
	layer, config := im.Layers[0].Digest.String(), im.Config.Digest.String()
	layersBefore, configBefore := reg.BlobGets(layer), reg.BlobGets(config)

	m, err := c.FetchManifest(ctx, reg.Repository("ebpf/manifest-only"), digest)
	if err != nil {
		t.Fatalf("FetchManifest %s: %v", ref, err)
	}
	if _, ok := m.Program(testbundle.XDPProgram); !ok {
		t.Errorf("manifest lacks %s: %+v", testbundle.XDPProgram, m.Programs)
	}
	if got := reg.BlobGets(layer) - layersBefore; got != 0 {
		t.Errorf("FetchManifest downloaded the ELF layer %d time(s)", got)
	}
	if got := reg.BlobGets(config) - configBefore; got != 1 {
		t.Errorf("FetchManifest downloaded the config blob %d time(s), want 1", got)
	}

	// The config blob is still checked against its digest.
	reg.TamperBlob(t, config, []byte(`{"name":"not the pushed manifest"}`))
	if _, err := c.FetchManifest(ctx, reg.Repository("ebpf/manifest-only"), digest); !errors.Is(err, bundles.ErrDigestMismatch) {
		t.Errorf("FetchManifest of a tampered config: %v, want ErrDigestMismatch", err)
	}
}
