package remote_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestManifestMemo: a manifest read once is answered from memory for TTL
// (no registry request, even with the registry gone), then read again; a
// failed read is not remembered.
func TestManifestMemo(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	_, digest := testbundle.Push(t, reg, "ebpf/memo", "v1", testbundle.Source{})
	repo := reg.Repository("ebpf/memo")
	ctx := context.Background()
	c := remote.New(remote.Options{Timeout: 5 * time.Second})
	b, err := c.Fetch(ctx, repo, digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		t.Fatal(err)
	}
	config := im.Config.Digest.String()
	now := time.Unix(1_000_000, 0)
	m := &remote.ManifestMemo{Client: c, TTL: time.Minute, Now: func() time.Time { return now }}

	missing := "sha256:" + "00000000000000000000000000000000000000000000000000000000000000ab"
	for range 2 {
		if _, err := m.FetchManifest(ctx, repo, missing); !errors.Is(err, bundles.ErrNotFound) {
			t.Fatalf("FetchManifest(missing digest) = %v, want ErrNotFound every time", err)
		}
	}
	before := reg.BlobGets(config)
	first, err := m.FetchManifest(ctx, repo, digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first.Program(testbundle.XDPProgram); !ok {
		t.Fatalf("manifest lacks %s", testbundle.XDPProgram)
	}
	now = now.Add(59 * time.Second)
	second, err := m.FetchManifest(ctx, repo, digest)
	if err != nil || second != first {
		t.Fatalf("FetchManifest within TTL = %p, %v; want the remembered %p", second, err, first)
	}
	if got := reg.BlobGets(config) - before; got != 1 {
		t.Errorf("config blob read %d time(s) for two fetches within TTL, want 1", got)
	}

	reg.Stop()
	if _, err := m.FetchManifest(ctx, repo, digest); err != nil {
		t.Fatalf("FetchManifest within TTL, registry down: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := m.FetchManifest(ctx, repo, digest); !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("FetchManifest past TTL, registry down = %v, want ErrRegistryUnavailable", err)
	}
}
