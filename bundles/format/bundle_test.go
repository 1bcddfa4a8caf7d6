package format_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// parts returns a consistent set of bundle parts around elf, after edit
// changed the manifest and image manifest (digests recomputed).
func parts(t testing.TB, elf []byte, edit func(m *format.Manifest, im *ocispec.Manifest)) format.Parts {
	t.Helper()
	m := validManifest()
	m.Objects[0].Digest = format.Digest(elf)
	m.Objects[0].Size = int64(len(elf))
	im := &ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: format.ArtifactType,
		Layers: []ocispec.Descriptor{{
			MediaType: format.ELFMediaType, Digest: digest.Digest(format.Digest(elf)), Size: int64(len(elf)),
			Annotations: map[string]string{format.AnnotationTitle: m.Objects[0].Name, format.AnnotationEndianness: "little"},
		}},
	}
	edit(m, im)
	config, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	im.Config = ocispec.Descriptor{MediaType: format.ConfigMediaType, Digest: digest.Digest(format.Digest(config)), Size: int64(len(config))}
	raw, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	return format.Parts{Repository: "r.example.com/x", Digest: format.Digest(raw), ImageManifest: raw, Config: config,
		Layers: map[string][]byte{format.Digest(elf): elf}}
}

func TestAssemble(t *testing.T) {
	elf := []byte("\x7fELF pretend object")
	none := func(*format.Manifest, *ocispec.Manifest) {}
	tests := []struct {
		name    string
		edit    func(m *format.Manifest, im *ocispec.Manifest) // changes before digests are computed
		breakIt func(p *format.Parts)                          // changes after
		want    error                                          // sentinel; nil = assembles
		msg     string                                         // text the error must contain
	}{
		{name: "valid", edit: none, breakIt: func(*format.Parts) {}},
		{name: "wrong digest asked", edit: none, breakIt: func(p *format.Parts) { p.Digest = digestA }, want: bundles.ErrDigestMismatch, msg: "image manifest hashes to"},
		{name: "config swapped", edit: none, breakIt: func(p *format.Parts) { p.Config = append([]byte(" "), p.Config...) }, want: bundles.ErrDigestMismatch, msg: "config blob hashes to"},
		{name: "layer tampered", edit: none, breakIt: func(p *format.Parts) {
			for d := range p.Layers {
				p.Layers[d] = []byte("\x7fELF evil object!!!")
			}
		}, want: bundles.ErrDigestMismatch, msg: "object xdpfilter_bpfel.o hashes to"},
		{name: "layer missing", edit: none, breakIt: func(p *format.Parts) { p.Layers = nil }, want: bundles.ErrBundleInvalid, msg: "missing"},
		{name: "title differs from object", edit: func(_ *format.Manifest, im *ocispec.Manifest) {
			im.Layers[0].Annotations[format.AnnotationTitle] = "other.o"
		}, breakIt: func(*format.Parts) {}, want: bundles.ErrBundleInvalid, msg: `does not match layer 0 "other.o"`},
		{name: "title is a path", edit: func(_ *format.Manifest, im *ocispec.Manifest) {
			im.Layers[0].Annotations[format.AnnotationTitle] = "../../x.o"
		}, breakIt: func(*format.Parts) {}, want: bundles.ErrBundleInvalid, msg: "layer 0 title"},
		{name: "wrong artifact type", edit: func(_ *format.Manifest, im *ocispec.Manifest) { im.ArtifactType = "application/x-other" },
			breakIt: func(*format.Parts) {}, want: bundles.ErrBundleInvalid, msg: "artifact type"},
		{name: "layer media type", edit: func(_ *format.Manifest, im *ocispec.Manifest) { im.Layers[0].MediaType = "application/octet-stream" },
			breakIt: func(*format.Parts) {}, want: bundles.ErrBundleInvalid, msg: "layer 0 media type"},
		{name: "too many layers", edit: func(_ *format.Manifest, im *ocispec.Manifest) {
			for range format.MaxObjects {
				im.Layers = append(im.Layers, im.Layers[0])
			}
		}, breakIt: func(*format.Parts) {}, want: bundles.ErrTooLarge, msg: "17 layers"},
		{name: "layer oversize", edit: func(_ *format.Manifest, im *ocispec.Manifest) { im.Layers[0].Size = format.MaxObjectSize + 1 },
			breakIt: func(*format.Parts) {}, want: bundles.ErrTooLarge, msg: "layer 0 is"},
		{name: "invalid config", edit: func(m *format.Manifest, _ *ocispec.Manifest) { m.Programs = append(m.Programs, m.Programs[0]) },
			breakIt: func(*format.Parts) {}, want: bundles.ErrBundleInvalid, msg: "duplicate program"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parts(t, elf, tt.edit)
			tt.breakIt(&p)
			b, err := format.Assemble(p)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Assemble: %v", err)
				}
				got, err := b.Object("xdpfilter_bpfel.o")
				if err != nil || string(got) != string(elf) || b.Digest != p.Digest {
					t.Fatalf("Object = %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Assemble = %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
		})
	}
}

func FuzzParseImageManifest(f *testing.F) {
	p := parts(f, []byte("\x7fELF seed"), func(*format.Manifest, *ocispec.Manifest) {})
	f.Add(p.ImageManifest)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"annotations":{"org.opencontainers.image.title":"../x"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := format.ParseImageManifest(data)
		if err != nil {
			if !errors.Is(err, bundles.ErrBundleInvalid) && !errors.Is(err, bundles.ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrBundleInvalid nor ErrTooLarge", err)
			}
			return
		}
		if len(im.Layers) == 0 || len(im.Layers) > format.MaxObjects || im.ArtifactType != format.ArtifactType {
			t.Fatalf("accepted %d layers, artifact type %q", len(im.Layers), im.ArtifactType)
		}
		for _, l := range im.Layers {
			if format.CheckFileName(l.Annotations[format.AnnotationTitle]) != nil || l.Size > format.MaxObjectSize {
				t.Fatalf("accepted layer %+v", l)
			}
		}
	})
}

// FuzzAssemble feeds arbitrary image manifests, config blobs and one layer
// (as a registry or a node cache returns them: any bytes) to Assemble, with
// the manifest digest the caller asked for. It never panics; errors wrap
// the format's sentinels; an assembled bundle holds a valid manifest whose
// every object is there, hashing to its digest; and checking it against
// its ELF objects never panics either.
func FuzzAssemble(f *testing.F) {
	elf := []byte("\x7fELF seed")
	none := func(*format.Manifest, *ocispec.Manifest) {}
	p := parts(f, elf, none)
	f.Add(p.ImageManifest, p.Config, elf)
	cgroup := parts(f, kernelprog.Object, func(m *format.Manifest, _ *ocispec.Manifest) {
		m.Programs = []format.Program{{Name: kernelprog.CgroupSKB, Object: m.Objects[0].Name, Section: "cgroup_skb/egress",
			Type: "cgroup_skb", AttachType: "CGroupInetEgress", License: "GPL", Attach: format.AttachHint{Kind: "cgroup"}}}
		m.Maps, m.MetricMaps = nil, nil
	})
	f.Add(cgroup.ImageManifest, cgroup.Config, kernelprog.Object)
	bad := parts(f, elf, func(m *format.Manifest, _ *ocispec.Manifest) { m.Objects[0].Name = "../x.o" })
	f.Add(bad.ImageManifest, bad.Config, elf)
	f.Add([]byte(`{}`), []byte(`{}`), []byte{})
	f.Fuzz(func(t *testing.T, imageManifest, config, layer []byte) {
		b, err := format.Assemble(format.Parts{Repository: "r.example.com/x", Digest: format.Digest(imageManifest),
			ImageManifest: imageManifest, Config: config, Layers: map[string][]byte{format.Digest(layer): layer}})
		if err != nil {
			if !errors.Is(err, bundles.ErrBundleInvalid) && !errors.Is(err, bundles.ErrTooLarge) && !errors.Is(err, bundles.ErrDigestMismatch) {
				t.Fatalf("error %v wraps none of the format's sentinels", err)
			}
			return
		}
		if err := b.Manifest.Validate(); err != nil {
			t.Fatalf("assembled an invalid manifest: %v", err)
		}
		size := int64(len(imageManifest) + len(config))
		for _, o := range b.Manifest.Objects {
			data, err := b.Object(o.Name)
			if err != nil || format.Digest(data) != o.Digest || int64(len(data)) != o.Size {
				t.Fatalf("object %s: %d bytes, %v; manifest says %s, %d bytes", o.Name, len(data), err, o.Digest, o.Size)
			}
			size += o.Size
		}
		if b.Size() != size {
			t.Fatalf("size %d, want %d", b.Size(), size)
		}
		if err := b.CheckObjects(); err != nil && !errors.Is(err, bundles.ErrBundleInvalid) && !errors.Is(err, bundles.ErrManifestMismatch) {
			t.Fatalf("CheckObjects error %v wraps neither ErrBundleInvalid nor ErrManifestMismatch", err)
		}
	})
}
