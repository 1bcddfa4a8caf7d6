// Package trust evaluates BundleTrustPolicy objects: which policies cover a
// bundle, whether one of their keys signed it, and which program types they
// allow.
package trust

import (
	"context"
	"errors"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
)

// KeySource resolves the PEM public key a TrustedKey.SecretRef names.
type KeySource func(ctx context.Context, ref v1alpha1.SecretKeyRef) ([]byte, error)

// Verifier checks bundles against trust policies.
type Verifier struct {
	// Remote are the registry options signatures are read with.
	Remote remote.Options
	// Keys resolves secretRef keys; nil refuses policies that use them.
	Keys KeySource
}

// Result is the outcome of a successful verification.
type Result struct {
	// Policy is the name of the policy that admitted the bundle.
	Policy string
	// KeyName is the TrustedKey name that verified; empty when Unsigned.
	KeyName string
	// Fingerprint is "SHA256:<hex>" of that key; empty when Unsigned.
	Fingerprint string
	// Unsigned is true when admitted only by allowUnsigned.
	Unsigned bool
	// AllowedProgramTypes is the admitting policy's allow-list; empty
	// means every type.
	AllowedProgramTypes []string
}

var errNotImplemented = errors.New("not implemented yet")

// Signer describes who admitted the bundle, for BpfProgram.status.signer:
// "policy/key SHA256:ab12…", or "policy (unsigned allowed)".
func (r Result) Signer() string {
	return ""
}

// Verify admits repository@digest when a policy covering repository has a
// key that signed it, or says allowUnsigned. Errors wrap
// bundles.ErrNoTrustPolicy, ErrUnsigned, ErrSignatureMismatch or
// ErrRegistryUnavailable.
func (v *Verifier) Verify(ctx context.Context, repository, digest string, policies []v1alpha1.BundleTrustPolicy) (Result, error) {
	return Result{}, errNotImplemented
}

// CheckProgramTypes refuses (bundles.ErrProgramTypeDenied) a manifest with a
// program type outside r.AllowedProgramTypes, when that list is set.
func CheckProgramTypes(r Result, m *format.Manifest) error {
	return errNotImplemented
}

// Covers tells whether one of policy's image globs matches repository
// (registry/path, without tag or digest).
func Covers(policy v1alpha1.BundleTrustPolicy, repository string) bool {
	return false
}
