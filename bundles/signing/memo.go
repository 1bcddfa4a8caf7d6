package signing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/bpfleet/bpfleet/bundles/memo"
	"github.com/bpfleet/bpfleet/bundles/remote"
)

// Memo remembers, for TTL, which of a set of public keys signed a digest,
// so that admitting the same digest again (another BpfProgram of the same
// bundle, a re-apply) costs no registry round trip. Only successes are
// remembered: "key K signed digest D" is a fact that a later read cannot
// make false, while a refusal or an unreachable registry is asked again
// every time. Callers still resolve the keys themselves each time, so a
// rotated key (a new Secret, a policy edit) is used at once: the entry is
// keyed by the keys' bytes.
//
// The zero value is ready; a nil *Memo verifies every time. It is safe for
// concurrent use.
type Memo struct {
	// TTL is how long a success stands before the registry is read again;
	// zero means DefaultMemoTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	store memo.Store[[]int]
}

// DefaultMemoTTL is how long a remembered signature check stands; the node
// agents' VerifyMemo keeps theirs as long.
const DefaultMemoTTL = 10 * time.Minute

// maxMemoEntries bounds the memo; the oldest entry goes first.
const maxMemoEntries = 512

// VerifyKeys is VerifyKeys, answered from memory when the same keys were
// found to sign the same repository@digest less than TTL ago.
func (m *Memo) VerifyKeys(ctx context.Context, repository, digest string, pubKeysPEM [][]byte, opts remote.Options) ([]int, error) {
	if m == nil {
		return VerifyKeys(ctx, repository, digest, pubKeysPEM, opts)
	}
	now, ttl := memo.Clock(m.Now, m.TTL, DefaultMemoTTL)
	key := memoKey(repository, digest, pubKeysPEM)
	if signed, ok := m.store.Fresh(key, now(), ttl); ok {
		return slices.Clone(signed), nil
	}
	signed, err := VerifyKeys(ctx, repository, digest, pubKeysPEM, opts)
	if err != nil {
		m.store.Delete(key)
		return nil, err
	}
	m.store.Put(key, slices.Clone(signed), now(), maxMemoEntries)
	return signed, nil
}

// memoKey names repository@digest and the keys, in order (the answer is
// indexes into them).
func memoKey(repository, digest string, pubKeysPEM [][]byte) string {
	h := sha256.New()
	for _, k := range pubKeysPEM {
		sum := sha256.Sum256(k)
		h.Write(sum[:])
	}
	return repository + "@" + digest + " " + hex.EncodeToString(h.Sum(nil))
}
