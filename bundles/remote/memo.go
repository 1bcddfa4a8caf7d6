package remote

import (
	"context"
	"time"

	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/memo"
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

	store memo.Store[*format.Manifest]
}

// DefaultManifestTTL is ManifestMemo's default TTL.
const DefaultManifestTTL = 10 * time.Minute

// maxManifests bounds ManifestMemo; the oldest entry goes first.
const maxManifests = 256

// FetchManifest is Client.FetchManifest, answered from memory when read
// less than TTL ago.
func (m *ManifestMemo) FetchManifest(ctx context.Context, repository, digest string) (*format.Manifest, error) {
	now, ttl := memo.Clock(m.Now, m.TTL, DefaultManifestTTL)
	key := repository + "@" + digest
	if man, ok := m.store.Fresh(key, now(), ttl); ok {
		return man, nil
	}
	man, err := m.Client.FetchManifest(ctx, repository, digest)
	if err != nil {
		return nil, err
	}
	m.store.Put(key, man, now(), maxManifests)
	return man, nil
}
