package cache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/cache"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

const repoPath = "ebpf/xdp"

type fixture struct {
	reg    *registry.Registry
	repo   string
	digest string
	dir    string
	cache  *cache.Cache
}

func setup(t *testing.T) *fixture {
	t.Helper()
	reg := registry.Start(t, registry.Options{})
	_, digest := testbundle.Push(t, reg, repoPath, "v1", testbundle.Source{})
	dir := t.TempDir()
	c, err := cache.Open(dir, remote.New(remote.Options{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{reg: reg, repo: reg.Repository(repoPath), digest: digest, dir: dir, cache: c}
}

func (f *fixture) blobPath(digest string) string {
	return filepath.Join(f.dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

func TestGetServesFromDiskAfterFirstFetch(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	b, err := f.cache.Get(ctx, f.repo, f.digest)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	layer := b.Manifest.Objects[0].Digest
	if got := f.reg.BlobGets(layer); got != 1 {
		t.Fatalf("layer downloaded %d times, want 1", got)
	}
	f.reg.Stop() // registry outage: the cache must keep serving
	again, err := f.cache.Get(ctx, f.repo, f.digest)
	if err != nil || !again.Equal(b) || again.Repository != f.repo {
		t.Fatalf("Get from disk = %v, %v", again, err)
	}
	// A new Cache on the same directory (agent restart) still has it.
	c2, err := cache.Open(f.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Lookup(ctx, f.digest); err != nil {
		t.Fatalf("Lookup after reopen: %v", err)
	}
	if ds, err := c2.Digests(ctx); err != nil || len(ds) != 1 || ds[0] != f.digest {
		t.Fatalf("Digests = %v, %v", ds, err)
	}
}

func TestCorruptedBlobIsDetectedAndRefetched(t *testing.T) {
	tests := []struct {
		name   string
		target func(f *fixture, layer, config string) string // digest of the blob to corrupt
	}{
		{name: "layer", target: func(_ *fixture, layer, _ string) string { return layer }},
		{name: "config", target: func(_ *fixture, _, config string) string { return config }},
		{name: "image manifest", target: func(f *fixture, _, _ string) string { return f.digest }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			ctx := context.Background()
			b, err := f.cache.Get(ctx, f.repo, f.digest)
			if err != nil {
				t.Fatal(err)
			}
			layer := b.Manifest.Objects[0].Digest
			config := format.Digest(b.Config())
			victim := tt.target(f, layer, config)
			data, err := os.ReadFile(f.blobPath(victim))
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x01 // one flipped bit, same size
			if err := os.WriteFile(f.blobPath(victim), data, 0o644); err != nil {
				t.Fatal(err)
			}

			if _, err := f.cache.Lookup(ctx, f.digest); !errors.Is(err, bundles.ErrDigestMismatch) {
				t.Fatalf("Lookup of corrupted cache = %v, want ErrDigestMismatch", err)
			}
			before := f.reg.BlobGets(victim)
			got, err := f.cache.Get(ctx, f.repo, f.digest)
			if err != nil || !got.Equal(b) {
				t.Fatalf("Get after corruption = %v, %v", got, err)
			}
			if victim != f.digest && f.reg.BlobGets(victim) != before+1 {
				t.Errorf("corrupted blob downloaded %d more times, want 1", f.reg.BlobGets(victim)-before)
			}
			if _, err := f.cache.Lookup(ctx, f.digest); err != nil {
				t.Fatalf("cache not repaired: %v", err)
			}
		})
	}
}

func TestConcurrentGetsShareOneDownload(t *testing.T) {
	f := setup(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.cache.Get(context.Background(), f.repo, f.digest)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, _ := f.cache.Lookup(context.Background(), f.digest)
	if got := f.reg.BlobGets(b.Manifest.Objects[0].Digest); got != 1 {
		t.Fatalf("16 concurrent Gets downloaded the layer %d times, want 1", got)
	}
}

func TestFailedFetchLeavesCacheEmpty(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, f *fixture) // makes the fetch fail
		want    error                          // sentinel Get must wrap
	}{
		{name: "registry down", breakIt: func(t *testing.T, f *fixture) { f.reg.Stop() }, want: bundles.ErrRegistryUnavailable},
		{name: "blob tampered in registry", breakIt: func(t *testing.T, f *fixture) {
			b, err := remote.New(remote.Options{}).Fetch(context.Background(), f.repo, f.digest)
			if err != nil {
				t.Fatal(err)
			}
			f.reg.TamperBlob(t, b.Manifest.Objects[0].Digest, []byte("not the ELF you signed"))
		}, want: bundles.ErrDigestMismatch},
		{name: "unknown digest", breakIt: func(t *testing.T, f *fixture) { f.digest = "sha256:" + strings.Repeat("1", 64) }, want: bundles.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			tt.breakIt(t, f)
			start := time.Now()
			_, err := f.cache.Get(context.Background(), f.repo, f.digest)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Get = %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Get took %v to fail", d)
			}
			if ds, err := f.cache.Digests(context.Background()); err != nil || len(ds) != 0 {
				t.Fatalf("cache holds %v after a failed fetch (%v)", ds, err)
			}
			if _, err := f.cache.Lookup(context.Background(), f.digest); !errors.Is(err, bundles.ErrNotFound) {
				t.Fatalf("Lookup = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestGC(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	_, other := testbundle.Push(t, f.reg, repoPath, "v2", testbundle.Source{Return: 1})
	keep, err := f.cache.Get(ctx, f.repo, f.digest)
	if err != nil {
		t.Fatal(err)
	}
	drop, err := f.cache.Get(ctx, f.repo, other)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := f.cache.GC([]string{f.digest})
	if err != nil || removed != 1 {
		t.Fatalf("GC = %d, %v; want 1", removed, err)
	}
	if _, err := f.cache.Lookup(ctx, other); !errors.Is(err, bundles.ErrNotFound) {
		t.Fatalf("Lookup(collected) = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(f.blobPath(drop.Manifest.Objects[0].Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("collected bundle's layer still on disk: %v", err)
	}
	got, err := f.cache.Lookup(ctx, f.digest)
	if err != nil || !got.Equal(keep) {
		t.Fatalf("kept bundle = %v, %v", got, err)
	}
	if removed, err := f.cache.GC([]string{f.digest}); err != nil || removed != 0 {
		t.Fatalf("second GC = %d, %v; want 0", removed, err)
	}
}

func TestBadDigestRefused(t *testing.T) {
	f := setup(t)
	for _, d := range []string{"", "sha256:abc", "../../etc/passwd", "sha512:" + strings.Repeat("a", 128)} {
		if _, err := f.cache.Get(context.Background(), f.repo, d); !errors.Is(err, bundles.ErrBundleInvalid) {
			t.Errorf("Get(%q) = %v, want ErrBundleInvalid", d, err)
		}
	}
}

func TestReopenWithCorruptedManifest(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	want, err := f.cache.Get(ctx, f.repo, f.digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.blobPath(f.digest), []byte(`{"garbage":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c2, err := cache.Open(f.dir, remote.New(remote.Options{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatalf("Open with a corrupted manifest: %v", err)
	}
	got, err := c2.Get(ctx, f.repo, f.digest)
	if err != nil || !got.Equal(want) {
		t.Fatalf("Get after reopen = %v, %v", got, err)
	}
	if _, err := c2.Lookup(ctx, f.digest); err != nil {
		t.Fatalf("not repaired: %v", err)
	}
}

func TestGCKeepsBlobsSharedWithKeptBundles(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(map[bool]string{false: "same process", true: "after reopen"}[reopen], func(t *testing.T) {
			f := setup(t)
			ctx := context.Background()
			// Same ELF, another version: a new config and manifest, the same layer.
			_, other := testbundle.Push(t, f.reg, repoPath, "v2", testbundle.Source{Version: "0.2.0"})
			keep, err := f.cache.Get(ctx, f.repo, f.digest)
			if err != nil {
				t.Fatal(err)
			}
			drop, err := f.cache.Get(ctx, f.repo, other)
			if err != nil {
				t.Fatal(err)
			}
			if keep.Manifest.Objects[0].Digest != drop.Manifest.Objects[0].Digest {
				t.Fatal("test bundles should share their layer")
			}
			c := f.cache
			if reopen {
				if c, err = cache.Open(f.dir, nil); err != nil {
					t.Fatal(err)
				}
			}
			if removed, err := c.GC([]string{f.digest}); err != nil || removed != 1 {
				t.Fatalf("GC = %d, %v", removed, err)
			}
			if _, err := c.Lookup(ctx, f.digest); err != nil {
				t.Fatalf("kept bundle broken by GC: %v", err)
			}
			if _, err := os.Stat(f.blobPath(other)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("collected manifest still on disk: %v", err)
			}
		})
	}
}

// gatedFetcher holds every Fetch of the real client until release closes.
type gatedFetcher struct {
	real    cache.Fetcher
	release chan struct{}
	mu      sync.Mutex
	calls   int
}

func (g *gatedFetcher) Fetch(ctx context.Context, repository, digest string) (*format.Bundle, error) {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
	<-g.release
	return g.real.Fetch(ctx, repository, digest)
}

func TestCallerGivingUpDoesNotCancelTheSharedDownload(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	_, digest := testbundle.Push(t, reg, repoPath, "v1", testbundle.Source{})
	g := &gatedFetcher{real: remote.New(remote.Options{Timeout: 5 * time.Second}), release: make(chan struct{})}
	c, err := cache.Open(t.TempDir(), g)
	if err != nil {
		t.Fatal(err)
	}
	patient := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), reg.Repository(repoPath), digest)
		patient <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, reg.Repository(repoPath), digest); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient Get = %v, want DeadlineExceeded", err)
	}
	close(g.release)
	if err := <-patient; err != nil {
		t.Fatalf("patient Get = %v", err)
	}
	if g.calls != 1 {
		t.Fatalf("%d downloads, want 1 shared", g.calls)
	}
	if _, err := c.Lookup(context.Background(), digest); err != nil {
		t.Fatalf("bundle not stored: %v", err)
	}
}
