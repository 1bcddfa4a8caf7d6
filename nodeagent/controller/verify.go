package controller

import (
	"context"
	"errors"
	"time"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/memo"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// Verifier checks a bundle digest against the trust policies;
// *trust.Verifier satisfies it.
type Verifier interface {
	Verify(ctx context.Context, repository, digest string, policies []v1alpha1.BundleTrustPolicy) (trust.Result, error)
}

// Verification is a successful verification and when it happened.
type Verification struct {
	trust.Result
	// At is when the signature was checked against the registry.
	At time.Time
}

// VerifyMemo remembers successful verifications of a digest under a given
// set of trust policies for TTL, so that a resync does not ask the registry
// for signatures every time. A changed policy, an expired entry or a failed
// check means a new verification. When the registry is unreachable, or a
// trust key's Secret cannot be read, a remembered success stands: an outage
// is no evidence against a signature already checked, and what runs must
// keep running.
//
// It is a dependency of the Reconciler (like the bundle cache), shared by
// every request, and safe for concurrent use.
type VerifyMemo struct {
	// Verifier does the actual check.
	Verifier Verifier
	// TTL is how long a success is trusted before the signature is checked
	// again; zero means DefaultVerifyTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	store memo.Store[Verification]
}

// DefaultVerifyTTL is how long a verification stands without a new check.
const DefaultVerifyTTL = 10 * time.Minute

const maxMemoEntries = 512

// Verify returns a verification of repository@digest under policies, from
// memory when fresh enough.
func (m *VerifyMemo) Verify(ctx context.Context, repository, digest string, policies []v1alpha1.BundleTrustPolicy) (Verification, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	ttl := m.TTL
	if ttl == 0 {
		ttl = DefaultVerifyTTL
	}
	key := repository + "@" + digest + " " + policyKey(policies)
	prev, at, ok := m.store.Lookup(key)
	if ok && now().Sub(at) < ttl {
		return prev, nil
	}
	res, err := m.Verifier.Verify(ctx, repository, digest, policies)
	if err != nil {
		if ok && (errors.Is(err, bundles.ErrRegistryUnavailable) || errors.Is(err, bundles.ErrKeyUnavailable)) {
			return prev, nil
		}
		m.store.Delete(key)
		return Verification{}, err
	}
	v := Verification{Result: res, At: now()}
	m.store.Put(key, v, v.At, maxMemoEntries)
	return v, nil
}
