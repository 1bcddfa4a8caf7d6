package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bpfleet/bpfleet/bundles"
)

// Bundle is a bundle held in memory whose every byte has been checked
// against its digest. Build one with Assemble.
type Bundle struct {
	// Digest of the OCI image manifest, sha256:<hex>.
	Digest string
	// Repository it came from (registry/path), informational.
	Repository string
	// Manifest is the decoded, validated config blob.
	Manifest *Manifest

	imageManifest []byte
	config        []byte
	objects       map[string][]byte // by Object.Name
	// load reads an object's bytes on demand in a bundle that holds none
	// (WithoutObjects).
	load func(name string) ([]byte, error)
}

// Parts are the raw pieces of a bundle as a registry or OCI layout stores them.
type Parts struct {
	// Repository is copied to Bundle.Repository.
	Repository string
	// Digest is the expected digest of ImageManifest.
	Digest string
	// ImageManifest is the raw OCI image manifest.
	ImageManifest []byte
	// Config is the raw config blob.
	Config []byte
	// Layers are the raw ELF layers by layer digest.
	Layers map[string][]byte
}

// Assemble checks parts completely and returns the bundle: the image manifest
// hashes to Digest, passes CheckImageManifest, the config and every layer hash
// to their descriptors, the config parses, and objects and layers match one
// to one. Errors wrap bundles.ErrDigestMismatch, ErrBundleInvalid or
// ErrTooLarge.
func Assemble(p Parts) (*Bundle, error) {
	im, m, err := assembleHeader(p)
	if err != nil {
		return nil, err
	}
	objects := make(map[string][]byte, len(im.Layers))
	for _, o := range m.Objects {
		data, ok := p.Layers[o.Digest]
		if !ok {
			return nil, fmt.Errorf("%w: layer %s (%s) missing", bundles.ErrBundleInvalid, o.Digest, o.Name)
		}
		if got := Digest(data); got != o.Digest || int64(len(data)) != o.Size {
			return nil, fmt.Errorf("%w: object %s hashes to %s, want %s", bundles.ErrDigestMismatch, o.Name, got, o.Digest)
		}
		objects[o.Name] = data
	}
	return &Bundle{
		Digest:        p.Digest,
		Repository:    p.Repository,
		Manifest:      m,
		imageManifest: p.ImageManifest,
		config:        p.Config,
		objects:       objects,
	}, nil
}

// AssembleManifest checks what Assemble checks but the layers' bytes, which
// it does not need (Parts.Layers is ignored), and returns the bundle's
// manifest: for a reader that never loads the ELF objects (the operator).
func AssembleManifest(p Parts) (*Manifest, error) {
	_, m, err := assembleHeader(p)
	return m, err
}

// assembleHeader checks the image manifest and config of p, and that the
// manifest's objects and the layers match one to one.
func assembleHeader(p Parts) (*ocispec.Manifest, *Manifest, error) {
	if got := Digest(p.ImageManifest); got != p.Digest {
		return nil, nil, fmt.Errorf("%w: image manifest hashes to %s, want %s", bundles.ErrDigestMismatch, got, p.Digest)
	}
	im, err := ParseImageManifest(p.ImageManifest)
	if err != nil {
		return nil, nil, err
	}
	if got := Digest(p.Config); got != im.Config.Digest.String() || int64(len(p.Config)) != im.Config.Size {
		return nil, nil, fmt.Errorf("%w: config blob hashes to %s, want %s", bundles.ErrDigestMismatch, got, im.Config.Digest)
	}
	m, err := ParseManifest(p.Config)
	if err != nil {
		return nil, nil, err
	}
	if len(m.Objects) != len(im.Layers) {
		return nil, nil, fmt.Errorf("%w: %d objects in the manifest, %d layers", bundles.ErrBundleInvalid, len(m.Objects), len(im.Layers))
	}
	for i, layer := range im.Layers {
		o := m.Objects[i]
		title := layer.Annotations[AnnotationTitle]
		if o.Name != title || o.Digest != layer.Digest.String() || o.Size != layer.Size ||
			o.Endianness != layer.Annotations[AnnotationEndianness] {
			return nil, nil, fmt.Errorf("%w: objects[%d] %q does not match layer %d %q (%s)", bundles.ErrBundleInvalid, i, o.Name, i, title, layer.Digest)
		}
	}
	return im, m, nil
}

// ParseImageManifest decodes an OCI image manifest and checks it is a bundle:
// size, media types, artifactType, layer count, sizes and file names.
func ParseImageManifest(data []byte) (*ocispec.Manifest, error) {
	if len(data) > MaxImageManifestSize {
		return nil, fmt.Errorf("%w: image manifest is %d bytes, limit %d", bundles.ErrTooLarge, len(data), MaxImageManifestSize)
	}
	var im ocispec.Manifest
	if err := json.Unmarshal(data, &im); err != nil {
		return nil, fmt.Errorf("%w: decode image manifest: %w", bundles.ErrBundleInvalid, err)
	}
	if err := CheckImageManifest(&im); err != nil {
		return nil, err
	}
	return &im, nil
}

// CheckImageManifest checks an OCI image manifest is a bundle within limits.
func CheckImageManifest(im *ocispec.Manifest) error {
	switch {
	case im.SchemaVersion != 2:
		return fmt.Errorf("%w: image manifest schemaVersion %d, want 2", bundles.ErrBundleInvalid, im.SchemaVersion)
	case im.MediaType != ocispec.MediaTypeImageManifest:
		return fmt.Errorf("%w: media type %q, want %s", bundles.ErrBundleInvalid, im.MediaType, ocispec.MediaTypeImageManifest)
	case im.ArtifactType != ArtifactType:
		return fmt.Errorf("%w: artifact type %q, want %s", bundles.ErrBundleInvalid, im.ArtifactType, ArtifactType)
	case im.Config.MediaType != ConfigMediaType:
		return fmt.Errorf("%w: config media type %q, want %s", bundles.ErrBundleInvalid, im.Config.MediaType, ConfigMediaType)
	case im.Config.Size > MaxConfigSize:
		return fmt.Errorf("%w: config is %d bytes, limit %d", bundles.ErrTooLarge, im.Config.Size, MaxConfigSize)
	case len(im.Layers) > MaxObjects:
		return fmt.Errorf("%w: %d layers, limit %d", bundles.ErrTooLarge, len(im.Layers), MaxObjects)
	case len(im.Layers) == 0:
		return fmt.Errorf("%w: no layer", bundles.ErrBundleInvalid)
	}
	if err := im.Config.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: config digest: %w", bundles.ErrBundleInvalid, err)
	}
	for i, l := range im.Layers {
		if l.MediaType != ELFMediaType {
			return fmt.Errorf("%w: layer %d media type %q, want %s", bundles.ErrBundleInvalid, i, l.MediaType, ELFMediaType)
		}
		if l.Size > MaxObjectSize || l.Size < 0 {
			return fmt.Errorf("%w: layer %d is %d bytes, limit %d", bundles.ErrTooLarge, i, l.Size, MaxObjectSize)
		}
		if err := l.Digest.Validate(); err != nil {
			return fmt.Errorf("%w: layer %d digest: %w", bundles.ErrBundleInvalid, i, err)
		}
		if err := CheckFileName(l.Annotations[AnnotationTitle]); err != nil {
			return fmt.Errorf("layer %d title: %w", i, err)
		}
	}
	return nil
}

// Object returns the ELF bytes of the named object. They were checked
// against their digest when the bundle was assembled; do not modify them.
func (b *Bundle) Object(name string) ([]byte, error) {
	data, ok := b.objects[name]
	if ok {
		return data, nil
	}
	if b.load != nil && b.Manifest != nil && slices.ContainsFunc(b.Manifest.Objects, func(o Object) bool { return o.Name == name }) {
		return b.load(name)
	}
	return nil, fmt.Errorf("%w: bundle %s has no object %q", bundles.ErrNotFound, b.Digest, name)
}

// WithoutObjects returns a copy of b that keeps its manifest and config but
// no object bytes: Object calls load for them, each time, and load must
// check what it returns against the object's digest. A cache keeps such a
// copy so that a bundle's ELF bytes live only while a program loads.
func (b *Bundle) WithoutObjects(load func(name string) ([]byte, error)) *Bundle {
	c := *b
	c.objects = nil
	c.load = load
	return &c
}

// Program returns the named program of the manifest.
func (b *Bundle) Program(name string) (*Program, bool) {
	return b.Manifest.Program(name)
}

// Map returns the named map of the manifest.
func (b *Bundle) Map(name string) (*Map, bool) {
	return b.Manifest.Map(name)
}

// ImageManifest returns the raw OCI image manifest (hashes to Digest).
func (b *Bundle) ImageManifest() []byte { return b.imageManifest }

// Config returns the raw config blob.
func (b *Bundle) Config() []byte { return b.config }

// Size is the total size in bytes of manifest, config and the objects it
// holds (none in a bundle from WithoutObjects).
func (b *Bundle) Size() int64 {
	n := int64(len(b.imageManifest) + len(b.config))
	for _, o := range b.objects {
		n += int64(len(o))
	}
	return n
}

// Digest returns sha256:<hex> of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Equal tells whether two bundles have the same digest and content.
func (b *Bundle) Equal(o *Bundle) bool {
	return b.Digest == o.Digest && bytes.Equal(b.imageManifest, o.imageManifest)
}
