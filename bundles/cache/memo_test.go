package cache_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles"
)

// allocatedBy returns the bytes f allocates, on average over n calls.
func allocatedBy(n int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
}

// TestVerifiedHitsAreMemoised: once a cached bundle was read and hashed,
// Lookup (every reconcile, every metrics scrape) neither reads nor hashes
// it again while its blob files are unchanged, and the bundle it returns
// holds no ELF bytes: Object reads and checks them from disk when a program
// loads. A blob changed on disk, even with its size and mtime put back, is
// read and hashed again and its corruption found.
func TestVerifiedHitsAreMemoised(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	full, err := f.cache.Get(ctx, f.repo, f.digest)
	if err != nil {
		t.Fatal(err)
	}
	obj := full.Manifest.Objects[0]
	elf, err := full.Object(obj.Name)
	if err != nil || len(elf) == 0 {
		t.Fatalf("object of the fetched bundle: %d bytes, %v", len(elf), err)
	}

	hit := func() {
		if _, err := f.cache.Lookup(ctx, f.digest); err != nil {
			t.Fatal(err)
		}
	}
	perHit := allocatedBy(200, hit)
	t.Logf("a memoised hit allocates %d bytes; the bundle's ELF object alone is %d", perHit, len(elf))
	if perHit >= uint64(len(elf)) {
		t.Errorf("a cache hit allocates %d bytes, as much as reading the %d-byte object again", perHit, len(elf))
	}

	b, err := f.cache.Lookup(ctx, f.digest)
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() >= int64(len(elf))+int64(len(b.ImageManifest())+len(b.Config())) {
		t.Errorf("the memoised bundle holds its object bytes (size %d)", b.Size())
	}
	again, err := b.Object(obj.Name)
	if err != nil || string(again) != string(elf) {
		t.Fatalf("object read back from disk: %d bytes, %v", len(again), err)
	}

	// Corrupt the layer in place, same size, with its mtime put back.
	path := f.blobPath(obj.Digest)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), elf...)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, time.Now(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Object(obj.Name); !errors.Is(err, bundles.ErrDigestMismatch) {
		t.Errorf("loading from a bundle returned before the corruption: want ErrDigestMismatch, got %v", err)
	}
	if _, err := f.cache.Lookup(ctx, f.digest); !errors.Is(err, bundles.ErrDigestMismatch) {
		t.Errorf("lookup after the blob changed: want ErrDigestMismatch, got %v", err)
	}
	// Get repairs it from the registry, as before.
	if _, err := f.cache.Get(ctx, f.repo, f.digest); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if _, err := f.cache.Lookup(ctx, f.digest); err != nil {
		t.Fatalf("lookup after the repair: %v", err)
	}
}
