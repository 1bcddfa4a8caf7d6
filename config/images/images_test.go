package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bpfleet/bpfleet/test/support/registry"
)

// Cross-compiling two binaries for two architectures is the slow part: it
// happens once per test binary, on first use (so `go test -list`, which
// make fuzz runs, stays fast), and every test shares the result. TestMain
// removes the binaries at the end.
var (
	testOpts = Options{
		ModRoot:  "../..",
		Arches:   []string{"amd64", "arm64"},
		Version:  "v0.0.0-test",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Source:   "https://github.com/bpfleet/bpfleet",
		Created:  time.Unix(1700000000, 0).UTC(),
	}
	binDir      string
	compileOnce = sync.OnceValues(func() (Binaries, error) {
		dir, err := os.MkdirTemp("", "bpfleet-images-test-")
		if err != nil {
			return nil, err
		}
		binDir = dir
		start := time.Now()
		bins, err := Compile(context.Background(), testOpts, Specs, dir)
		fmt.Fprintf(os.Stderr, "compiled %d images x %d arches in %s\n", len(Specs), len(testOpts.Arches), time.Since(start).Round(time.Millisecond))
		return bins, err
	})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// testBins returns the shared binaries, compiling them on first use.
func testBins(t *testing.T) Binaries {
	t.Helper()
	bins, err := compileOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// builtIndexes holds the first index built of each spec with testOpts.
var builtIndexes sync.Map

// built returns the index of s with testOpts, built once and shared: each
// build gzips two binaries of tens of megabytes.
func built(t *testing.T, s Spec) v1.ImageIndex {
	t.Helper()
	if idx, ok := builtIndexes.Load(s.Name); ok {
		return idx.(v1.ImageIndex)
	}
	idx := index(t, s, testOpts)
	builtIndexes.Store(s.Name, idx)
	return idx
}

// index builds the index of s with o afresh.
func index(t *testing.T, s Spec, o Options) v1.ImageIndex {
	t.Helper()
	idx, err := Index(s, testBins(t)[s.Name], o)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// layerFile returns the only entry of img's only layer and its bytes.
func layerFile(t *testing.T, img v1.Image) (*tar.Header, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("want 1 layer, got %d", len(layers))
	}
	if mt, err := layers[0].MediaType(); err != nil || mt != types.OCILayer {
		t.Fatalf("layer media type %s, %v", mt, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if next, err := tr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("layer holds more than the binary: %v %v", next, err)
	}
	return hdr, data
}

func TestIndex(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		// user is the config's User, owner the binary's uid:gid.
		user, owner string
	}{
		{spec: Specs[0], user: "65532:65532", owner: "65532:65532"},
		{spec: Specs[1], user: "", owner: "0:0"},
	} {
		t.Run(tc.spec.Name, func(t *testing.T) {
			idx := built(t, tc.spec)
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if im.MediaType != types.OCIImageIndex || im.Annotations[annRevision] != testOpts.Revision || im.Annotations[annVersion] != testOpts.Version {
				t.Fatalf("index: media type %s, annotations %v", im.MediaType, im.Annotations)
			}
			var arches []string
			for _, desc := range im.Manifests {
				if desc.Platform == nil || desc.Platform.OS != "linux" || desc.MediaType != types.OCIManifestSchema1 {
					t.Fatalf("manifest %s: platform %+v media type %s", desc.Digest, desc.Platform, desc.MediaType)
				}
				arch := desc.Platform.Architecture
				arches = append(arches, arch)
				img, err := idx.Image(desc.Digest)
				if err != nil {
					t.Fatal(err)
				}
				hdr, data := layerFile(t, img)
				want, err := os.ReadFile(testBins(t)[tc.spec.Name][arch])
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range []struct {
					field     string
					got, want any
				}{
					{"name", hdr.Name, tc.spec.Name},
					{"type", hdr.Typeflag, byte(tar.TypeReg)},
					{"mode", hdr.Mode, int64(0o755)},
					{"owner", fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid), tc.owner},
					{"mtime", hdr.ModTime.Unix(), testOpts.Created.Unix()},
					{"content", sha256.Sum256(data), sha256.Sum256(want)},
				} {
					if c.got != c.want {
						t.Errorf("%s: layer %s %v, want %v", arch, c.field, c.got, c.want)
					}
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.Architecture != arch || cf.OS != "linux" || !cf.Created.Equal(testOpts.Created) ||
					!slices.Equal(cf.Config.Entrypoint, []string{"/" + tc.spec.Name}) || cf.Config.User != tc.user ||
					cf.Config.Labels[annSource] != testOpts.Source || cf.Config.Labels[annRevision] != testOpts.Revision {
					t.Errorf("%s: config %+v", arch, cf)
				}
				if m, err := img.Manifest(); err != nil || m.Annotations[annVersion] != testOpts.Version || m.Config.MediaType != types.OCIConfigJSON {
					t.Errorf("%s: manifest %+v, %v", arch, m, err)
				}
			}
			if !slices.Equal(arches, []string{"amd64", "arm64"}) {
				t.Fatalf("architectures %v", arches)
			}
		})
	}
}

// TestBinaryRuns extracts the binary built for this machine from each image
// and runs it with --help: flag usage, exit 0 (or 2, flag's usage error).
func TestBinaryRuns(t *testing.T) {
	for _, s := range Specs {
		t.Run(s.Name, func(t *testing.T) {
			idx := built(t, s)
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var img v1.Image
			for _, desc := range im.Manifests {
				if desc.Platform.Architecture == runtime.GOARCH {
					if img, err = idx.Image(desc.Digest); err != nil {
						t.Fatal(err)
					}
				}
			}
			if img == nil {
				t.Fatalf("no %s image in the index", runtime.GOARCH)
			}
			hdr, data := layerFile(t, img)
			bin := filepath.Join(t.TempDir(), hdr.Name)
			if err := os.WriteFile(bin, data, os.FileMode(hdr.Mode)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
			var exit *exec.ExitError
			if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 2) {
				t.Fatalf("%s --help: %v\n%s", hdr.Name, err, out)
			}
			if !strings.Contains(string(out), "Usage of") || !strings.Contains(string(out), "-zap-log-level") {
				t.Fatalf("%s --help printed no usage:\n%s", hdr.Name, out)
			}
		})
	}
}

// digests lists the digests of idx, its manifests, configs and layers.
func digests(t *testing.T, idx v1.ImageIndex) []string {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{d.String()}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		man, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, desc.Digest.String(), man.Config.Digest.String())
		for _, l := range man.Layers {
			out = append(out, l.Digest.String())
		}
	}
	return out
}

func TestReproducible(t *testing.T) {
	for _, s := range Specs {
		t.Run(s.Name, func(t *testing.T) {
			idx, idx2 := built(t, s), index(t, s, testOpts)
			first, again := digests(t, idx), digests(t, idx2)
			if !slices.Equal(first, again) {
				t.Fatalf("two builds differ:\n%v\n%v", first, again)
			}
			// Control: the timestamp is part of what is hashed (one arch is
			// enough: digests are index, then manifest, config, layer).
			later := testOpts
			later.Created = later.Created.Add(time.Second)
			later.Arches = testOpts.Arches[:1]
			if other := digests(t, index(t, s, later)); other[1] == first[1] || other[3] == first[3] {
				t.Fatalf("another SOURCE_DATE_EPOCH gave the same manifest or layer: %v, %v", other, first)
			}
			// Two layouts written from two builds are byte for byte the same.
			var indexJSON [][]byte
			for _, idx := range []v1.ImageIndex{idx, idx2} {
				dir := t.TempDir()
				if err := WriteLayout(dir, s.Name+":"+testOpts.Version, idx); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(filepath.Join(dir, "index.json"))
				if err != nil {
					t.Fatal(err)
				}
				indexJSON = append(indexJSON, b)
			}
			if !bytes.Equal(indexJSON[0], indexJSON[1]) {
				t.Fatalf("layouts differ:\n%s\n%s", indexJSON[0], indexJSON[1])
			}
		})
	}
}

// TestLayout writes both images twice into one layout: one entry per tag,
// the second write replaces the first.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	want := map[string]v1.Hash{}
	for range 2 {
		for _, s := range Specs {
			idx := built(t, s)
			tag := s.Name + ":" + testOpts.Version
			if err := WriteLayout(dir, tag, idx); err != nil {
				t.Fatal(err)
			}
			d, _ := idx.Digest()
			want[tag] = d
		}
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]v1.Hash{}
	for _, desc := range im.Manifests {
		got[desc.Annotations[annRefName]] = desc.Digest
		if desc.MediaType != types.OCIImageIndex {
			t.Errorf("%s: media type %s", desc.Annotations[annRefName], desc.MediaType)
		}
		sub, err := root.ImageIndex(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if sm, err := sub.IndexManifest(); err != nil || len(sm.Manifests) != 2 {
			t.Fatalf("%s: %v %v", desc.Digest, sm, err)
		}
	}
	if len(got) != len(want) || len(im.Manifests) != len(want) {
		t.Fatalf("layout entries %v, want %v", got, want)
	}
	for tag, d := range want {
		if got[tag] != d {
			t.Errorf("%s: %s in the layout, built %s", tag, got[tag], d)
		}
	}
}

// TestPush pushes both indexes to a registry and pulls each back by
// digest: go-containerregistry's in-process registry and Debian's
// docker-registry (github.com/docker/distribution), which real clusters are
// closer to.
func TestPush(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *registry.Registry
	}{
		{name: "in-process", start: func(tb testing.TB) *registry.Registry { return registry.Start(tb, registry.Options{}) }},
		{name: "distribution", start: registry.StartDistribution},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := tc.start(t)
			for _, s := range Specs {
				t.Run(s.Name, func(t *testing.T) { pushAndPull(t, reg, s) })
			}
		})
	}
}

func pushAndPull(t *testing.T, reg *registry.Registry, s Spec) {
	t.Helper()
	idx := built(t, s)
	ref, err := Push(context.Background(), idx, reg.Host+"/bpfleet/"+s.Name+":"+testOpts.Version)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if ref.DigestStr() != want.String() {
		t.Fatalf("pushed as %s, built %s", ref, want)
	}
	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if !slices.Equal(digests(t, pulled), digests(t, idx)) {
		t.Fatalf("pulled index differs from the pushed one")
	}
	byTag, err := remote.Index(ref.Context().Tag(testOpts.Version))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := byTag.Digest(); d != want {
		t.Fatalf("tag points at %s, want %s", d, want)
	}
	// Every layer came back intact.
	im, _ := pulled.IndexManifest()
	for _, desc := range im.Manifests {
		img, err := pulled.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		_, data := layerFile(t, img)
		src, _ := os.ReadFile(testBins(t)[s.Name][desc.Platform.Architecture])
		if !bytes.Equal(data, src) {
			t.Fatalf("%s: pulled binary differs", desc.Platform.Architecture)
		}
	}
}

func TestPlainHTTPLoopbackOnly(t *testing.T) {
	ok := roundTripperFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil })
	tr := loopbackOnlyHTTP{next: ok}
	for _, tc := range []struct {
		url string
		// refused tells whether the request must not leave.
		refused bool
	}{
		{url: "http://127.0.0.1:5000/v2/"},
		{url: "http://localhost:5000/v2/"},
		{url: "http://[::1]:5000/v2/"},
		{url: "https://10.0.0.1:5000/v2/"},
		{url: "https://registry.example.com/v2/"},
		{url: "http://10.0.0.1:5000/v2/", refused: true},
		{url: "http://192.168.1.10/v2/", refused: true},
		{url: "http://registry.local/v2/", refused: true},
		{url: "http://registry.example.com/v2/", refused: true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.RoundTrip(req)
			if refused := errors.Is(err, errNotLoopback); refused != tc.refused {
				t.Fatalf("refused %v (%v), want %v", refused, err, tc.refused)
			}
		})
	}
	// And through Push: a private-range registry is not reached over HTTP.
	idx := built(t, Specs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Push(ctx, idx, "192.0.2.1/bpfleet/x:v1"); err == nil {
		t.Fatal("push to an unreachable non-loopback registry succeeded")
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRun drives the command as `go run` would: one image, one arch (the
// link is the slow part), written to a layout and pushed.
func TestRun(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	var out bytes.Buffer
	args := []string{"-o", dir, "-version", "v9.9.9", "-arch", runtime.GOARCH, "-images", "bpfleet-operator", "-push", reg.Host + "/bpfleet"}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "bpfleet-operator:v9.9.9\tsha256:") || !strings.Contains(lines[1], reg.Host+"/bpfleet/bpfleet-operator@sha256:") {
		t.Fatalf("output:\n%s", out.String())
	}
	ref, err := name.ParseReference(strings.Split(lines[1], "\t")[1])
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Annotations[annCreated] != "2023-11-14T22:13:20Z" || im.Annotations[annVersion] != "v9.9.9" {
		t.Fatalf("index %+v", im)
	}
	if err := run(context.Background(), []string{"-images", "nope"}, io.Discard); !errors.Is(err, errUnknownImage) {
		t.Fatalf("unknown image: %v", err)
	}
}
