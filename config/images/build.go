package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI annotation and label keys (image-spec annotations.md).
const (
	annTitle       = "org.opencontainers.image.title"
	annDescription = "org.opencontainers.image.description"
	annSource      = "org.opencontainers.image.source"
	annRevision    = "org.opencontainers.image.revision"
	annVersion     = "org.opencontainers.image.version"
	annCreated     = "org.opencontainers.image.created"
	annRefName     = "org.opencontainers.image.ref.name"
)

// Spec is one image: a single static binary at /<Name>, its entrypoint.
type Spec struct {
	// Name is the image name and the binary's name and path.
	Name string
	// Pkg is the main package, relative to the module root.
	Pkg string
	// UID and GID own the binary; a non-zero UID is also the image's user.
	UID, GID int
	// Description goes into the org.opencontainers.image.description label.
	Description string
}

// Specs are the images bpfleet ships. The operator runs as the distroless
// "nonroot" user; the agent runs as root (config/agent/daemonset.yaml gives
// it capabilities, not privileged) with a read-only root filesystem: the
// binary is the only file either needs.
var Specs = []Spec{
	{Name: "bpfleet-operator", Pkg: "./cmd/bpfleet-operator", UID: 65532, GID: 65532,
		Description: "bpfleet operator: resolves, verifies and rolls out eBPF bundles; never touches a kernel"},
	{Name: "bpfleet-agent", Pkg: "./cmd/bpfleet-agent",
		Description: "bpfleet node agent: loads, attaches, pins and reports eBPF programs on its node"},
}

// Options describe one build.
type Options struct {
	// ModRoot is the directory of go.mod.
	ModRoot string
	// Arches are GOARCH values, each becoming one manifest of every index.
	Arches []string
	// Version, Revision (a git commit, may be empty) and Source (a URL) go
	// into the OCI labels and annotations.
	Version, Revision, Source string
	// Created is every timestamp in the images (SOURCE_DATE_EPOCH or 0).
	Created time.Time
}

// Binaries maps image name, then GOARCH, to a compiled binary.
type Binaries map[string]map[string]string

// Compile cross-compiles every spec for every arch into dir, statically
// (CGO_ENABLED=0) and without local paths (-trimpath).
func Compile(ctx context.Context, o Options, specs []Spec, dir string) (Binaries, error) {
	bins := Binaries{}
	for _, s := range specs {
		bins[s.Name] = map[string]string{}
		for _, arch := range o.Arches {
			out := filepath.Join(dir, "linux-"+arch, s.Name)
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, s.Pkg)
			cmd.Dir = o.ModRoot
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
			if b, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("compile %s for linux/%s: %w\n%s", s.Pkg, arch, err, b)
			}
			bins[s.Name][arch] = out
		}
	}
	return bins, nil
}

// Annotations are the OCI annotations of s, also its config labels.
func (o Options) Annotations(s Spec) map[string]string {
	a := map[string]string{
		annTitle:       s.Name,
		annDescription: s.Description,
		annSource:      o.Source,
		annVersion:     o.Version,
		annCreated:     o.Created.UTC().Format(time.RFC3339),
	}
	if o.Revision != "" {
		a[annRevision] = o.Revision
	}
	return a
}

// Index builds the multi-arch image index of s from its binaries, one
// manifest per arch of o, in that order.
func Index(s Spec, bins map[string]string, o Options) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range o.Arches {
		bin, ok := bins[arch]
		if !ok {
			return nil, fmt.Errorf("build index %s: no binary for %s", s.Name, arch)
		}
		img, err := Image(s, arch, bin, o)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return mutate.Annotations(idx, o.Annotations(s)).(v1.ImageIndex), nil
}

// Image builds the linux/arch image of s: no base image, one layer holding
// bin at /<Name>, which is the entrypoint.
func Image(s Spec, arch, bin string, o Options) (v1.Image, error) {
	layer, err := BinaryLayer(bin, s.Name, s.UID, s.GID, o.Created)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: fmt.Sprintf("go build -trimpath %s (GOOS=linux GOARCH=%s CGO_ENABLED=0)", s.Pkg, arch),
			Comment:   "bpfleet config/images",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("build image %s/%s: %w", s.Name, arch, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("build image %s/%s: %w", s.Name, arch, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: o.Created}
	cf.Config.Entrypoint = []string{"/" + s.Name}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = o.Annotations(s)
	if s.UID != 0 {
		cf.Config.User = fmt.Sprintf("%d:%d", s.UID, s.GID)
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("build image %s/%s: %w", s.Name, arch, err)
	}
	return mutate.Annotations(img, o.Annotations(s)).(v1.Image), nil
}

// BinaryLayer is a gzip layer with one regular file, name, holding bin's
// bytes, mode 0755, owned by uid:gid, modified at mtime: the same bytes give
// the same digest.
func BinaryLayer(bin, name string, uid, gid int, mtime time.Time) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(name, "/"),
		Mode:     0o755,
		Uid:      uid,
		Gid:      gid,
		Size:     int64(len(data)),
		ModTime:  mtime.UTC(),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if _, err := tw.Write(data); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	// Compress once here rather than on every read of the layer: gzip of
	// the same bytes at the same level is the same, and the header carries
	// no name or time.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	raw := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	return layer, nil
}
