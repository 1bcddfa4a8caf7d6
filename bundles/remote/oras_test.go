package remote_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestStockOrasPullsABundle: a bundle pushed by bpfleet is an ordinary OCI
// artifact: a stock oras-go client, with none of bpfleet's code, copies it
// by tag (what `oras pull` does) and finds the same manifest digest, the
// bundle's artifactType, its config and one titled ELF layer per object.
func TestStockOrasPullsABundle(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, digest := testbundle.Push(t, reg, "ebpf/oras", "v1", testbundle.Source{})
	ctx := context.Background()

	repo, err := orasremote.NewRepository(reg.Repository("ebpf/oras"))
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	store := memory.New()
	desc, err := oras.Copy(ctx, repo, "v1", store, "v1", oras.DefaultCopyOptions)
	if err != nil {
		t.Fatalf("oras copy %s: %v", ref, err)
	}
	if desc.Digest.String() != digest || desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("oras resolved %s %s, want %s %s", desc.Digest, desc.MediaType, digest, ocispec.MediaTypeImageManifest)
	}
	raw, err := content.FetchAll(ctx, store, desc)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != format.ArtifactType || m.Config.MediaType != format.ConfigMediaType || len(m.Layers) == 0 {
		t.Fatalf("manifest artifactType %q config %q with %d layers", m.ArtifactType, m.Config.MediaType, len(m.Layers))
	}
	config, err := content.FetchAll(ctx, store, m.Config)
	if err != nil {
		t.Fatalf("config blob: %v", err)
	}
	bm, err := format.ParseManifest(config)
	if err != nil {
		t.Fatalf("the config oras pulled is no bundle manifest: %v", err)
	}
	for i, l := range m.Layers {
		title := l.Annotations[format.AnnotationTitle]
		if l.MediaType != format.ELFMediaType || title == "" || strings.Contains(title, "/") {
			t.Errorf("layer %d: media type %q title %q", i, l.MediaType, title)
		}
		elf, err := content.FetchAll(ctx, store, l)
		if err != nil || !strings.HasPrefix(string(elf), "\x7fELF") {
			t.Errorf("layer %d (%s): %d bytes, %v", i, title, len(elf), err)
		}
	}
	if len(m.Layers) != len(bm.Objects) {
		t.Errorf("%d layers for %d objects in the bundle manifest", len(m.Layers), len(bm.Objects))
	}
}
