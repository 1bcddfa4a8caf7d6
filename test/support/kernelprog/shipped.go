package kernelprog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/format"
)

// BuildBundle builds the bundle of a bpf/<pkg> directory (bundle.yaml plus
// its ELF objects) into an OCI layout under tmp, and reads it back through
// format.Assemble, as a node's cache would: the real *format.Bundle.
func BuildBundle(ctx context.Context, dir, tmp string) (*format.Bundle, error) {
	layout := filepath.Join(tmp, "layout")
	res, err := build.Build(ctx, dir, build.Options{LayoutDir: layout})
	if err != nil {
		return nil, fmt.Errorf("build bundle %s: %w", dir, err)
	}
	blob := func(digest string) ([]byte, error) {
		algo, hex, ok := strings.Cut(digest, ":")
		if !ok {
			return nil, fmt.Errorf("bad digest %q", digest)
		}
		return os.ReadFile(filepath.Join(layout, "blobs", algo, hex))
	}
	im, err := blob(res.Digest)
	if err != nil {
		return nil, fmt.Errorf("read image manifest: %w", err)
	}
	m, err := format.ParseImageManifest(im)
	if err != nil {
		return nil, err
	}
	parts := format.Parts{Repository: "test/" + filepath.Base(dir), Digest: res.Digest, ImageManifest: im, Layers: map[string][]byte{}}
	if parts.Config, err = blob(m.Config.Digest.String()); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	for _, l := range m.Layers {
		data, err := blob(l.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
		parts.Layers[l.Digest.String()] = data
	}
	return format.Assemble(parts)
}
