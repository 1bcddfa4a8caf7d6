// Package trust evaluates BundleTrustPolicy objects: which policies cover a
// bundle, whether one of their keys signed it, and which program types they
// allow. A bundle no policy covers is refused; allowUnsigned admits a bundle
// only when a covering policy says so, and the result says it loudly.
package trust

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
)

// KeySource resolves the PEM public key a TrustedKey.SecretRef names.
type KeySource func(ctx context.Context, ref v1alpha1.SecretKeyRef) ([]byte, error)

// ErrSecretRefRefused: a policy names a key by secretRef and the Verifier
// has no KeySource.
var ErrSecretRefRefused = errors.New("secretRef keys need a KeySource")

// DefaultSecretKey is the Secret data key used when SecretKeyRef.Key is empty.
const DefaultSecretKey = "cosign.pub"

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

// Signer describes who admitted the bundle, for BpfProgram.status.signer:
// "policy/key SHA256:ab12…" (16 hex digits), or "policy (unsigned, allowed
// by policy)".
func (r Result) Signer() string {
	if r.Unsigned {
		return r.Policy + " (unsigned, allowed by policy)"
	}
	fp := r.Fingerprint
	if len(fp) > len("SHA256:")+16 {
		fp = fp[:len("SHA256:")+16] + "…"
	}
	return r.Policy + "/" + r.KeyName + " " + fp
}

// Key is a resolved TrustedKey.
type Key struct {
	// Policy and Name identify the key.
	Policy, Name string
	// PEM is the public key.
	PEM []byte
	// Fingerprint is "SHA256:<hex>" of the key.
	Fingerprint string
}

// ResolveKeys returns the policy's keys, PEM inline or from KeySource, each
// parsed and fingerprinted. It fails on the first key that cannot be had.
func (v *Verifier) ResolveKeys(ctx context.Context, policy v1alpha1.BundleTrustPolicy) ([]Key, error) {
	keys := make([]Key, 0, len(policy.Spec.Keys))
	for _, k := range policy.Spec.Keys {
		pem := []byte(k.PublicKey)
		if k.SecretRef != nil {
			if v.Keys == nil {
				return nil, fmt.Errorf("policy %s key %s: %w", policy.Name, k.Name, ErrSecretRefRefused)
			}
			ref := *k.SecretRef
			if ref.Key == "" {
				ref.Key = DefaultSecretKey
			}
			var err error
			if pem, err = v.Keys(ctx, ref); err != nil {
				return nil, fmt.Errorf("policy %s key %s: read secret %s/%s: %w", policy.Name, k.Name, ref.Namespace, ref.Name, err)
			}
		}
		fp, err := signing.Fingerprint(pem)
		if err != nil {
			return nil, fmt.Errorf("policy %s key %s: %w", policy.Name, k.Name, err)
		}
		keys = append(keys, Key{Policy: policy.Name, Name: k.Name, PEM: pem, Fingerprint: fp})
	}
	return keys, nil
}

// Verify admits repository@digest when a policy covering repository has a
// key that signed it, or, failing that, when a covering policy says
// allowUnsigned. Signatures are read once for all covering keys. Errors wrap
// bundles.ErrNoTrustPolicy, ErrUnsigned, ErrSignatureMismatch,
// ErrRegistryUnavailable, or ErrSecretRefRefused / ErrBundleInvalid for keys
// that cannot be used.
func (v *Verifier) Verify(ctx context.Context, repository, digest string, policies []v1alpha1.BundleTrustPolicy) (Result, error) {
	var covering []v1alpha1.BundleTrustPolicy
	for _, p := range policies {
		if Covers(p, repository) {
			covering = append(covering, p)
		}
	}
	if len(covering) == 0 {
		return Result{}, fmt.Errorf("%w: %s (%d policies checked)", bundles.ErrNoTrustPolicy, repository, len(policies))
	}
	slices.SortFunc(covering, func(a, b v1alpha1.BundleTrustPolicy) int { return strings.Compare(a.Name, b.Name) })

	var keys []Key
	var keyErrs []error
	var lenient *v1alpha1.BundleTrustPolicy
	for i, p := range covering {
		if p.Spec.AllowUnsigned && lenient == nil {
			lenient = &covering[i]
		}
		k, err := v.ResolveKeys(ctx, p)
		if err != nil {
			// One broken policy must not hide another that admits.
			keyErrs = append(keyErrs, err)
			continue
		}
		keys = append(keys, k...)
	}

	var verifyErr error
	if len(keys) > 0 {
		pems := make([][]byte, len(keys))
		for i, k := range keys {
			pems[i] = k.PEM
		}
		idx, err := signing.Verify(ctx, repository, digest, pems, v.Remote)
		if err == nil {
			k := keys[idx]
			p := policyNamed(covering, k.Policy)
			return Result{Policy: k.Policy, KeyName: k.Name, Fingerprint: k.Fingerprint,
				AllowedProgramTypes: p.Spec.AllowedProgramTypes}, nil
		}
		if !errors.Is(err, bundles.ErrUnsigned) && !errors.Is(err, bundles.ErrSignatureMismatch) {
			return Result{}, err // registry trouble: never fall back to unsigned
		}
		verifyErr = err
	}
	if lenient != nil {
		return Result{Policy: lenient.Name, Unsigned: true, AllowedProgramTypes: lenient.Spec.AllowedProgramTypes}, nil
	}
	if verifyErr == nil {
		verifyErr = fmt.Errorf("%w: no usable key in the %d covering policies", bundles.ErrSignatureMismatch, len(covering))
	}
	return Result{}, errors.Join(append([]error{verifyErr}, keyErrs...)...)
}

func policyNamed(list []v1alpha1.BundleTrustPolicy, name string) v1alpha1.BundleTrustPolicy {
	for _, p := range list {
		if p.Name == name {
			return p
		}
	}
	return v1alpha1.BundleTrustPolicy{}
}

// CheckProgramTypes refuses (bundles.ErrProgramTypeDenied) a manifest with a
// program type outside r.AllowedProgramTypes, when that list is set.
func CheckProgramTypes(r Result, m *format.Manifest) error {
	if len(r.AllowedProgramTypes) == 0 {
		return nil
	}
	for _, p := range m.Programs {
		if !slices.Contains(r.AllowedProgramTypes, p.Type) {
			return fmt.Errorf("%w: program %s is %s, policy %s allows only %s",
				bundles.ErrProgramTypeDenied, p.Name, p.Type, r.Policy, strings.Join(r.AllowedProgramTypes, ", "))
		}
	}
	return nil
}

// Covers tells whether one of policy's image globs matches repository
// (registry/path; a tag or digest on it is ignored). Globs follow path.Match,
// where * stays within one path segment; a trailing /** matches any depth
// below. Globs and repository compare without a trailing tag or digest.
func Covers(policy v1alpha1.BundleTrustPolicy, repository string) bool {
	repository = stripReference(repository)
	for _, glob := range policy.Spec.Images {
		glob = stripReference(glob)
		if prefix, ok := strings.CutSuffix(glob, "/**"); ok {
			if m, err := path.Match(prefix, repository); err == nil && m {
				continue // "a/**" covers what is below a, not a itself
			}
			if matchPrefix(prefix, repository) {
				return true
			}
			continue
		}
		if m, err := path.Match(glob, repository); err == nil && m {
			return true
		}
	}
	return false
}

// matchPrefix tells whether the first segments of repository match glob and
// at least one segment follows.
func matchPrefix(glob, repository string) bool {
	n := strings.Count(glob, "/") + 1
	parts := strings.Split(repository, "/")
	if len(parts) <= n {
		return false
	}
	m, err := path.Match(glob, strings.Join(parts[:n], "/"))
	return err == nil && m
}

// stripReference drops "@digest" and a ":tag" in the last path segment.
func stripReference(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		s = s[:i]
	}
	slash := strings.LastIndex(s, "/")
	if i := strings.LastIndex(s, ":"); i > slash && slash >= 0 {
		s = s[:i]
	}
	return s
}
