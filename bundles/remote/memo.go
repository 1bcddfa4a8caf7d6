package remote

import (
	"context"
	"sync"
	"time"

	"github.com/bpfleet/bpfleet/bundles/format"
)

// ManifestMemo is a Client whose FetchManifest remembers, for TTL, the
// manifests it read by repository and digest. A digest names its content,
// so a remembered manifest is the one the registry would serve; the TTL only
// bounds how long a digest deleted from the registry still answers. The
// operator admits every BpfProgram of a bundle with its manifest, and the
// second program of the same digest needs no registry round trip.
// Failures are not remembered. The returned manifest is shared: callers
// must not modify it. Safe for concurrent use.
type ManifestMemo struct {
	*Client
	// TTL is how long a manifest is remembered; zero means DefaultManifestTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]manifestEntry
}

type manifestEntry struct {
	m  *format.Manifest
	at time.Time
}

// DefaultManifestTTL is ManifestMemo's default TTL.
const DefaultManifestTTL = 10 * time.Minute

// maxManifests bounds ManifestMemo; the oldest entry goes first.
const maxManifests = 256

// FetchManifest is Client.FetchManifest, answered from memory when read
// less than TTL ago.
func (m *ManifestMemo) FetchManifest(ctx context.Context, repository, digest string) (*format.Manifest, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = DefaultManifestTTL
	}
	key := repository + "@" + digest
	m.mu.Lock()
	e, ok := m.entries[key]
	m.mu.Unlock()
	if ok && now().Sub(e.at) < ttl {
		return e.m, nil
	}
	man, err := m.Client.FetchManifest(ctx, repository, digest)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[string]manifestEntry{}
	}
	if _, ok := m.entries[key]; !ok && len(m.entries) >= maxManifests {
		var oldest string
		var at time.Time
		for k, e := range m.entries {
			if oldest == "" || e.at.Before(at) {
				oldest, at = k, e.at
			}
		}
		delete(m.entries, oldest)
	}
	m.entries[key] = manifestEntry{m: man, at: now()}
	return man, nil
}
