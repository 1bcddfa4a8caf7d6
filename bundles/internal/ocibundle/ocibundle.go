// Package ocibundle reads and writes bundles through oras-go content
// interfaces, so the registry client, the build step and the node cache
// share one verified path.
package ocibundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
)

// ManifestDescriptor describes the image manifest with digest d and size.
func ManifestDescriptor(d string, size int64) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: format.ArtifactType,
		Digest:       digest.Digest(d),
		Size:         size,
	}
}

// Read fetches the bundle whose image manifest desc describes from f,
// checking sizes before reading and digests while reading, then assembles it.
func Read(ctx context.Context, f content.Fetcher, repository string, desc ocispec.Descriptor) (*format.Bundle, error) {
	raw, im, config, err := readHeader(ctx, f, desc)
	if err != nil {
		return nil, err
	}
	layers := make(map[string][]byte, len(im.Layers))
	for _, l := range im.Layers {
		data, err := content.FetchAll(ctx, f, l)
		if err != nil {
			return nil, fmt.Errorf("fetch layer %s (%s): %w", l.Digest, l.Annotations[format.AnnotationTitle], Classify(err))
		}
		layers[l.Digest.String()] = data
	}
	return format.Assemble(format.Parts{
		Repository:    repository,
		Digest:        desc.Digest.String(),
		ImageManifest: raw,
		Config:        config,
		Layers:        layers,
	})
}

// ReadManifest fetches only the image manifest and config blob of the
// bundle desc describes, never its ELF layers, and checks them as Read
// does; it returns the bundle's manifest.
func ReadManifest(ctx context.Context, f content.Fetcher, repository string, desc ocispec.Descriptor) (*format.Manifest, error) {
	raw, _, config, err := readHeader(ctx, f, desc)
	if err != nil {
		return nil, err
	}
	return format.AssembleManifest(format.Parts{Repository: repository, Digest: desc.Digest.String(), ImageManifest: raw, Config: config})
}

// readHeader fetches and checks the image manifest desc describes, then its
// config blob.
func readHeader(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor) (raw []byte, im *ocispec.Manifest, config []byte, err error) {
	if desc.Size > format.MaxImageManifestSize {
		return nil, nil, nil, fmt.Errorf("%w: image manifest is %d bytes, limit %d", bundles.ErrTooLarge, desc.Size, format.MaxImageManifestSize)
	}
	if desc.MediaType != "" && desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, nil, nil, fmt.Errorf("%w: %s is a %s, not an OCI image manifest", bundles.ErrBundleInvalid, desc.Digest, desc.MediaType)
	}
	desc.MediaType = ocispec.MediaTypeImageManifest
	raw, err = content.FetchAll(ctx, f, desc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("fetch image manifest %s: %w", desc.Digest, Classify(err))
	}
	im, err = format.ParseImageManifest(raw)
	if err != nil {
		return nil, nil, nil, err
	}
	config, err = content.FetchAll(ctx, f, im.Config)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("fetch config %s: %w", im.Config.Digest, Classify(err))
	}
	return raw, im, config, nil
}

// Write pushes b's layers, config and image manifest (in that order, so a
// reader never sees a manifest before its blobs) to s, skipping content s
// already has, and returns the manifest descriptor.
func Write(ctx context.Context, s content.Storage, b *format.Bundle) (ocispec.Descriptor, error) {
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for i, l := range im.Layers {
		data, err := b.Object(b.Manifest.Objects[i].Name)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		if err := pushIfMissing(ctx, s, l, data); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("store layer %s: %w", l.Digest, err)
		}
	}
	if err := pushIfMissing(ctx, s, im.Config, b.Config()); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("store config %s: %w", im.Config.Digest, err)
	}
	desc := ManifestDescriptor(b.Digest, int64(len(b.ImageManifest())))
	if err := pushIfMissing(ctx, s, desc, b.ImageManifest()); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("store image manifest %s: %w", b.Digest, err)
	}
	return desc, nil
}

func pushIfMissing(ctx context.Context, s content.Storage, desc ocispec.Descriptor, data []byte) error {
	ok, err := s.Exists(ctx, desc)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	err = s.Push(ctx, desc, bytes.NewReader(data))
	if errors.Is(err, errdef.ErrAlreadyExists) {
		return nil
	}
	return err
}

// Classify wraps oras-go errors in the bundles sentinel they amount to.
func Classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, content.ErrMismatchedDigest), errors.Is(err, content.ErrTrailingData),
		errors.Is(err, content.ErrInvalidDescriptorSize):
		return fmt.Errorf("%w: %w", bundles.ErrDigestMismatch, err)
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("%w: %w", bundles.ErrNotFound, err)
	}
	return err
}
