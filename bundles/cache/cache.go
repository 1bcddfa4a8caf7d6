// Package cache is the node-local bundle cache: a content-addressed OCI
// image layout on disk (blobs/sha256/<hex>, index.json). Every read is
// checked against its digest; an entry found corrupted is repaired from the
// registry. Concurrent requests for one digest share one download, and a
// registry outage never hides what the cache already holds.
package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/internal/ocibundle"
)

// Fetcher downloads a verified bundle; *remote.Client satisfies it.
type Fetcher interface {
	Fetch(ctx context.Context, repository, digest string) (*format.Bundle, error)
}

// Cache is a node-local bundle cache. It is safe for concurrent use by one
// process; two processes must not share a directory.
type Cache struct {
	dir     string
	fetcher Fetcher
	store   *oci.Store
	group   singleflight.Group
	// mu lets Get and Lookup run together and GC alone.
	mu sync.RWMutex
	// memoMu guards memo: the bundles Lookup verified, by digest, without
	// their object bytes, with the identity of every blob file they were
	// read from.
	memoMu sync.Mutex
	memo   map[string]memoEntry

	// KeepUnused is how long GC keeps a bundle its keep list stopped
	// naming, counted from the first GC that did not name it: a program
	// deleted and applied again, or a digest replaced and rolled back to,
	// then loads without the registry. Zero removes it at the first such GC.
	KeepUnused time.Duration
	// unusedSince is, per digest GC did not keep, when it first did not
	// (guarded by mu).
	unusedSince map[string]time.Time
}

// memoEntry is a verified cache hit: the bundle (no ELF bytes) and the
// identity of each of its blob files when it was read and hashed.
type memoEntry struct {
	bundle *format.Bundle
	files  []fileID
}

// fileID identifies a blob file's content as far as stat can: a file
// rewritten, replaced or truncated gets another identity, so a memoised
// hit is read and hashed again.
type fileID struct {
	path       string
	dev, ino   uint64
	size       int64
	mtimeNanos int64
	ctimeNanos int64
}

// tagPrefix marks the index.json entries of cached bundles: sha256-<hex>.
const tagPrefix = "sha256-"

var digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// Open opens (creating if needed) the cache in dir. fetcher may be nil for
// a cache that only serves what it holds.
func Open(dir string, fetcher Fetcher) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	store, err := oci.NewWithContext(context.Background(), dir)
	if err != nil {
		// A corrupted index.json or manifest must not keep the node from
		// starting: set the index aside and start from the blobs, which
		// Get verifies and repairs one by one.
		index := filepath.Join(dir, ocispec.ImageIndexFile)
		if renameErr := os.Rename(index, index+".corrupt"); renameErr != nil {
			return nil, fmt.Errorf("open cache %s: %w", dir, err)
		}
		if store, err = oci.NewWithContext(context.Background(), dir); err != nil {
			return nil, fmt.Errorf("open cache %s with a fresh index: %w", dir, err)
		}
	}
	return &Cache{dir: dir, fetcher: fetcher, store: store}, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Get returns the bundle with digest: from disk when present and intact,
// else fetched from repository and stored (repairing any corrupted blob).
// Concurrent callers for one digest share one download; each caller still
// gives up when its own ctx ends.
func (c *Cache) Get(ctx context.Context, repository, digest string) (*format.Bundle, error) {
	if !digestPattern.MatchString(digest) {
		return nil, fmt.Errorf("%w: %q is not sha256:<64 hex>", bundles.ErrBundleInvalid, digest)
	}
	b, err := c.Lookup(ctx, digest)
	switch {
	case err == nil:
		b.Repository = repository
		return b, nil
	case errors.Is(err, bundles.ErrNotFound), errors.Is(err, bundles.ErrDigestMismatch),
		errors.Is(err, bundles.ErrBundleInvalid), errors.Is(err, bundles.ErrTooLarge):
		// Missing or corrupted on disk: download it again below.
	default:
		return nil, err
	}
	if c.fetcher == nil {
		return nil, fmt.Errorf("cache has no fetcher: %w", err)
	}
	ch := c.group.DoChan(digest, func() (any, error) {
		// The download outlives a caller that gives up, so the others
		// still get it; the fetcher bounds it with its own timeout.
		return c.fetchAndStore(context.WithoutCancel(ctx), repository, digest)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("get %s: %w", digest, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*format.Bundle), nil
	}
}

func (c *Cache) fetchAndStore(ctx context.Context, repository, digest string) (*format.Bundle, error) {
	b, err := c.fetcher.Fetch(ctx, repository, digest)
	if err != nil {
		return nil, err
	}
	if b.Digest != digest {
		return nil, fmt.Errorf("%w: fetcher returned %s for %s", bundles.ErrDigestMismatch, b.Digest, digest)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.write(ctx, b); err != nil {
		return nil, fmt.Errorf("store %s in cache: %w", digest, err)
	}
	// What was just downloaded and written is verified: memoise it, and
	// let its object bytes go once the caller has loaded them.
	return c.remember(b), nil
}

// write stores b's blobs, replacing any that exist but do not hash to their
// digest, then the manifest, then the index entry.
func (c *Cache) write(ctx context.Context, b *format.Bundle) error {
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		return err
	}
	for i, l := range im.Layers {
		data, err := b.Object(b.Manifest.Objects[i].Name)
		if err != nil {
			return err
		}
		if err := c.ensureBlob(ctx, l, data); err != nil {
			return err
		}
	}
	if err := c.ensureBlob(ctx, im.Config, b.Config()); err != nil {
		return err
	}
	desc := ocibundle.ManifestDescriptor(b.Digest, int64(len(b.ImageManifest())))
	if err := c.ensureBlob(ctx, desc, b.ImageManifest()); err != nil {
		return err
	}
	return c.store.Tag(ctx, desc, tagPrefix+strings.TrimPrefix(b.Digest, "sha256:"))
}

func (c *Cache) ensureBlob(ctx context.Context, desc ocispec.Descriptor, data []byte) error {
	path := c.blobPath(desc.Digest)
	existing, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(existing, data):
		if ocispec.MediaTypeImageManifest == desc.MediaType {
			// Present and intact; make sure the store indexes it.
			return c.pushManifest(ctx, desc, data)
		}
		return nil
	case err == nil:
		// Corrupted on disk: replace atomically, so no reader ever sees it
		// missing or half written.
		return replaceFile(path, data)
	case errors.Is(err, os.ErrNotExist):
		if desc.MediaType == ocispec.MediaTypeImageManifest {
			return c.pushManifest(ctx, desc, data)
		}
		err := c.store.Push(ctx, desc, bytes.NewReader(data))
		if errors.Is(err, errdef.ErrAlreadyExists) {
			return nil
		}
		return err
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
}

func (c *Cache) pushManifest(ctx context.Context, desc ocispec.Descriptor, data []byte) error {
	err := c.store.Push(ctx, desc, bytes.NewReader(data))
	if errors.Is(err, errdef.ErrAlreadyExists) {
		return nil
	}
	return err
}

func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".repair-*")
	if err != nil {
		return fmt.Errorf("repair %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("repair %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("repair %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("repair %s: %w", path, err)
	}
	return nil
}

func (c *Cache) blobPath(d digest.Digest) string {
	return filepath.Join(c.dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// Lookup returns the bundle with digest from disk only, every blob checked
// against its digest. It returns bundles.ErrNotFound when absent and
// bundles.ErrDigestMismatch when corrupted. Use it when the registry must
// not be contacted. Bundle.Repository is empty.
func (c *Cache) Lookup(ctx context.Context, digest string) (*format.Bundle, error) {
	if !digestPattern.MatchString(digest) {
		return nil, fmt.Errorf("%w: %q is not sha256:<64 hex>", bundles.ErrBundleInvalid, digest)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if b, ok := c.memoised(digest); ok {
		return b, nil
	}
	fi, err := os.Stat(c.blobPath(ocidigest(digest)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s not in cache", bundles.ErrNotFound, digest)
	}
	desc := ocibundle.ManifestDescriptor(digest, fi.Size())
	b, err := ocibundle.Read(ctx, c.store, "", desc)
	if err != nil {
		return nil, fmt.Errorf("read %s from cache: %w", digest, err)
	}
	return c.remember(b), nil
}

// memoised returns the bundle Lookup verified before, when none of its
// blob files changed since: no read, no hash. The copy returned is the
// caller's to set Repository on.
func (c *Cache) memoised(digest string) (*format.Bundle, bool) {
	c.memoMu.Lock()
	e, ok := c.memo[digest]
	c.memoMu.Unlock()
	if !ok {
		return nil, false
	}
	for _, f := range e.files {
		if id, err := statID(f.path); err != nil || id != f {
			c.forget(digest)
			return nil, false
		}
	}
	b := *e.bundle
	return &b, true
}

// remember memoises b, just read and hashed, without its object bytes, and
// returns the bytes-less copy: Object then reads a layer from disk and
// checks its digest only when a program loads. When a blob cannot be
// stat'ed, b is returned as it is and nothing is memoised.
func (c *Cache) remember(b *format.Bundle) *format.Bundle {
	paths := []string{c.blobPath(ocidigest(b.Digest)), c.blobPath(ocidigest(format.Digest(b.Config())))}
	for _, o := range b.Manifest.Objects {
		paths = append(paths, c.blobPath(ocidigest(o.Digest)))
	}
	files := make([]fileID, 0, len(paths))
	for _, p := range paths {
		id, err := statID(p)
		if err != nil {
			return b
		}
		files = append(files, id)
	}
	lazy := b.WithoutObjects(c.objectLoader(b.Digest, b.Manifest.Objects))
	c.memoMu.Lock()
	if c.memo == nil {
		c.memo = map[string]memoEntry{}
	}
	c.memo[b.Digest] = memoEntry{bundle: lazy, files: files}
	c.memoMu.Unlock()
	out := *lazy
	out.Repository = b.Repository
	return &out
}

func (c *Cache) forget(digest string) {
	c.memoMu.Lock()
	delete(c.memo, digest)
	c.memoMu.Unlock()
}

// objectLoader reads an object's layer from the cache and checks it
// against its digest and size, at every call.
func (c *Cache) objectLoader(digest string, objects []format.Object) func(name string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		for _, o := range objects {
			if o.Name != name {
				continue
			}
			data, err := os.ReadFile(c.blobPath(ocidigest(o.Digest)))
			if err != nil {
				c.forget(digest)
				return nil, fmt.Errorf("%w: object %s of %s: %w", bundles.ErrNotFound, name, digest, err)
			}
			if int64(len(data)) != o.Size || format.Digest(data) != o.Digest {
				c.forget(digest)
				return nil, fmt.Errorf("%w: object %s of %s in cache does not hash to %s", bundles.ErrDigestMismatch, name, digest, o.Digest)
			}
			return data, nil
		}
		return nil, fmt.Errorf("%w: bundle %s has no object %q", bundles.ErrNotFound, digest, name)
	}
}

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return fileID{
		path: path, dev: st.Dev, ino: st.Ino, size: st.Size,
		mtimeNanos: st.Mtim.Nano(), ctimeNanos: st.Ctim.Nano(),
	}, nil
}

// Digests lists the digests of the bundles in the cache.
func (c *Cache) Digests(ctx context.Context) ([]string, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.digests(ctx)
}

func (c *Cache) digests(ctx context.Context) ([]string, error) {
	var out []string
	err := c.store.Tags(ctx, "", func(tags []string) error {
		for _, t := range tags {
			if strings.HasPrefix(t, tagPrefix) {
				out = append(out, "sha256:"+strings.TrimPrefix(t, tagPrefix))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list cache: %w", err)
	}
	return out, nil
}

// GC removes every bundle whose digest is not in keep and has not been for
// KeepUnused, with the blobs only they used, and returns how many bundles
// it removed.
func (c *Cache) GC(keep []string) (removed int, err error) {
	ctx := context.Background()
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := make(map[string]bool, len(keep))
	for _, d := range keep {
		kept[d] = true
	}
	all, err := c.digests(ctx)
	if err != nil {
		return 0, err
	}
	for _, d := range all {
		if kept[d] {
			delete(c.unusedSince, d)
			continue
		}
		if c.KeepUnused > 0 {
			since, ok := c.unusedSince[d]
			if !ok {
				if c.unusedSince == nil {
					c.unusedSince = map[string]time.Time{}
				}
				c.unusedSince[d] = now
			}
			if !ok || now.Sub(since) < c.KeepUnused {
				continue
			}
		}
		desc, err := c.store.Resolve(ctx, tagPrefix+strings.TrimPrefix(d, "sha256:"))
		if err != nil {
			return removed, fmt.Errorf("gc %s: %w", d, err)
		}
		if err := c.store.Delete(ctx, desc); err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return removed, fmt.Errorf("gc %s: %w", d, err)
		}
		c.forget(d)
		delete(c.unusedSince, d)
		removed++
	}
	if err := c.store.GC(ctx); err != nil {
		return removed, fmt.Errorf("gc blobs: %w", err)
	}
	return removed, nil
}

func ocidigest(d string) digest.Digest { return digest.Digest(d) }
