// Package cache is the node-local bundle cache: a content-addressed OCI
// layout on disk. Every read is checked against its digest; a corrupted entry
// is dropped and fetched again. Concurrent requests for one digest share one
// download.
package cache

import (
	"context"
	"errors"

	"github.com/bpfleet/bpfleet/bundles/format"
)

// Fetcher downloads a verified bundle; *remote.Client satisfies it.
type Fetcher interface {
	Fetch(ctx context.Context, repository, digest string) (*format.Bundle, error)
}

// Cache is a node-local bundle cache. It is safe for concurrent use.
type Cache struct {
	dir     string
	fetcher Fetcher
}

var errNotImplemented = errors.New("not implemented yet")

// Open opens (creating if needed) the cache in dir. fetcher may be nil for
// a cache that only serves what it holds.
func Open(dir string, fetcher Fetcher) (*Cache, error) {
	return &Cache{dir: dir, fetcher: fetcher}, errNotImplemented
}

// Get returns the bundle with digest: from disk when present and intact,
// else fetched from repository and stored. Concurrent callers for one digest
// share one download.
func (c *Cache) Get(ctx context.Context, repository, digest string) (*format.Bundle, error) {
	return nil, errNotImplemented
}

// Lookup returns the bundle with digest from disk only; bundles.ErrNotFound
// when absent. Use it when the registry must not be contacted.
func (c *Cache) Lookup(ctx context.Context, digest string) (*format.Bundle, error) {
	return nil, errNotImplemented
}

// GC removes every bundle whose digest is not in keep, with the blobs only
// they used, and returns how many bundles it removed.
func (c *Cache) GC(keep []string) (removed int, err error) {
	return 0, errNotImplemented
}
