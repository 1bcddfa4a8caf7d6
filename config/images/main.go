// Command images builds the OCI images of bpfleet-operator and
// bpfleet-agent without a container engine and without downloading a base
// image: it cross-compiles each binary (CGO_ENABLED=0, -trimpath) for every
// architecture, puts it alone in one layer on top of an empty image, and
// gathers the architectures into one OCI image index per image.
//
// Every timestamp is SOURCE_DATE_EPOCH (0 when unset), so the same sources
// give the same digests. The indexes land in an OCI layout directory, each
// named by org.opencontainers.image.ref.name "<image>:<version>", and are
// pushed to REGISTRY/<image>:<version> with -push REGISTRY. Plain HTTP is
// used for loopback registries only.
//
// Usage:
//
//	go run ./config/images -o bin/images [-version v0.1.0] [-push 127.0.0.1:5000/bpfleet]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	out := fs.String("o", "bin/images", "OCI layout directory to write the image indexes into (created or updated)")
	push := fs.String("push", "", "registry prefix to push every index to as PREFIX/<image>:<version>, e.g. 127.0.0.1:5000/bpfleet")
	version := fs.String("version", "", "image version (default: git describe --tags --always --dirty, else dev)")
	arches := fs.String("arch", "amd64,arm64", "comma-separated GOARCH list")
	source := fs.String("source", "https://github.com/bpfleet/bpfleet", "org.opencontainers.image.source")
	only := fs.String("images", "", "comma-separated subset of image names (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := modRoot(ctx)
	if err != nil {
		return err
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	o := Options{
		ModRoot:  root,
		Arches:   strings.Split(*arches, ","),
		Version:  *version,
		Revision: git(ctx, root, "rev-parse", "HEAD"),
		Source:   *source,
		Created:  created,
	}
	if o.Version == "" {
		o.Version = git(ctx, root, "describe", "--tags", "--always", "--dirty")
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	specs, err := selectSpecs(*only)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bpfleet-images-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	bins, err := Compile(ctx, o, specs, tmp)
	if err != nil {
		return err
	}
	for _, s := range specs {
		idx, err := Index(s, bins[s.Name], o)
		if err != nil {
			return err
		}
		tag := s.Name + ":" + o.Version
		if err := WriteLayout(*out, tag, idx); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return fmt.Errorf("digest %s: %w", tag, err)
		}
		fmt.Fprintf(stdout, "%s\t%s\toci:%s:%s\n", tag, d, *out, tag)
		if *push != "" {
			ref, err := Push(ctx, idx, strings.TrimSuffix(*push, "/")+"/"+tag)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%s\tpushed\n", tag, ref)
		}
	}
	return nil
}

func selectSpecs(only string) ([]Spec, error) {
	if only == "" {
		return Specs, nil
	}
	var out []Spec
	for _, n := range strings.Split(only, ",") {
		found := false
		for _, s := range Specs {
			if s.Name == n {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("select image %q: %w", n, errUnknownImage)
		}
	}
	return out, nil
}

var errUnknownImage = errors.New("unknown image")

// modRoot is the directory of the main module's go.mod.
func modRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find module root: not inside a module")
	}
	return strings.TrimSuffix(gomod, "/go.mod"), nil
}

// git returns the trimmed output of a git command in dir, "" on any error
// (no git, not a work tree).
func git(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// sourceDateEpoch is SOURCE_DATE_EPOCH (reproducible-builds.org) as a time,
// the Unix epoch when unset.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse SOURCE_DATE_EPOCH: %w", err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// WriteLayout writes idx into the OCI layout at dir (created when missing),
// named tag, replacing what had that name.
func WriteLayout(dir, tag string, idx v1.ImageIndex) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("create layout %s: %w", dir, err)
		}
	}
	ann := map[string]string{annRefName: tag}
	if err := p.ReplaceIndex(idx, match.Name(tag), layout.WithAnnotations(ann)); err != nil {
		return fmt.Errorf("write %s into layout %s: %w", tag, dir, err)
	}
	return nil
}

// Push pushes idx, its manifests and blobs to ref and returns ref by digest.
// Credentials come from the docker config (authn.DefaultKeychain).
func Push(ctx context.Context, idx v1.ImageIndex, ref string) (name.Digest, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("parse %s: %w", ref, err)
	}
	tr := loopbackOnlyHTTP{next: remote.DefaultTransport}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithTransport(tr)); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return tag.Context().Digest(d.String()), nil
}

// loopbackOnlyHTTP refuses plain HTTP to anything but a loopback address
// (go-containerregistry would also fall back to HTTP for RFC 1918 and .local
// hosts).
type loopbackOnlyHTTP struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t loopbackOnlyHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("refuse plain HTTP to %s: %w", req.URL.Host, errNotLoopback)
	}
	return t.next.RoundTrip(req)
}

var errNotLoopback = errors.New("only loopback registries may use plain HTTP")

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
