package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// startRegistry serves an OCI registry (go-containerregistry's, blobs in
// memory) on loopback and on the node's address: containerd and pushes use
// the first, pods (the operator resolving bundles) the second. Then it
// builds and pushes the sandbox and workload images.
func (c *Cluster) startRegistry(ctx context.Context) error {
	srv := &http.Server{Handler: ggcrregistry.New(ggcrregistry.Logger(discardLogger())), ReadHeaderTimeout: 10 * time.Second}
	for _, addr := range []string{c.RegistryHost, c.RegistryNodeHost} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		go func() { _ = srv.Serve(l) }()
	}
	c.registry = srv

	pause, err := c.buildPause(ctx)
	if err != nil {
		return err
	}
	if err := Push(ctx, pause, c.SandboxImage); err != nil {
		return err
	}
	busybox, err := busyboxImage()
	if err != nil {
		return err
	}
	return Push(ctx, busybox, c.WorkloadImage)
}

func (c *Cluster) buildPause(ctx context.Context) (v1.Image, error) {
	dir, err := os.MkdirTemp("", "bpfleet-pause-")
	if err != nil {
		return nil, fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./test/support/cluster/pause")
	cmd.Dir = c.opts.RepoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build pause: %w: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read pause: %w", err)
	}
	return Image([]File{{Path: "pause", Data: data, Mode: 0o755}}, []string{"/pause"})
}

// busyboxImage holds the host's static busybox (Debian's busybox-static)
// at /bin/busybox and a link per applet, so /bin/sh and friends work.
func busyboxImage() (v1.Image, error) {
	path, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("find busybox (apt-get install busybox-static): %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	files := []File{{Path: "bin/busybox", Data: data, Mode: 0o755}, {Path: "tmp", Mode: 0o1777 | os.ModeDir}}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			files = append(files, File{Path: "bin/" + applet, Link: "busybox"})
		}
	}
	return Image(files, []string{"/bin/sh"})
}

// File is one entry of an image layer: a regular file (Data, Mode), a
// directory (Mode with os.ModeDir) or a symbolic link (Link).
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
	Link string
}

// Image is a single-layer linux/amd64 image of files with entrypoint.
func Image(files []File, entrypoint []string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.Path, Mode: int64(f.Mode.Perm() | f.Mode&os.ModeSticky), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case f.Link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
		case f.Mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			if f.Mode&os.ModeSticky != 0 {
				hdr.Mode |= 0o1000
			}
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	raw := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("make image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("make image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = entrypoint
	cf.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("make image: %w", err)
	}
	return img, nil
}

// Push pushes img to ref on a loopback registry (plain HTTP).
func Push(ctx context.Context, img v1.Image, ref string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return fmt.Errorf("parse %s: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
