// Package trust evaluates BundleTrustPolicy objects: which policies cover a
// bundle, whether their keys signed it, and which program types and hooks
// they allow.
// A bundle no policy covers is refused; every covering policy must admit it
// (intersection), so a lenient policy never overrides a stricter one.
package trust

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/bpfleet/bpfleet/api/hooks"
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
	// Signatures remembers recent successful signature checks (keys are
	// still resolved every time); nil reads the registry every time.
	Signatures *signing.Memo
}

// Signature is a key of one covering policy that signed the bundle.
type Signature struct {
	// Policy and KeyName identify the key.
	Policy, KeyName string
	// Fingerprint is "SHA256:<hex>" of the key.
	Fingerprint string
}

// Limit is what one covering policy allows a bundle to load.
type Limit struct {
	// Policy is the policy's name.
	Policy string
	// ProgramTypes is the policy's allowedProgramTypes; empty means every type.
	ProgramTypes []string
	// AttachTypes is the policy's allowedAttachTypes (hooks.AttachType
	// names, tc/* and cgroup/* as globs); empty means every hook.
	AttachTypes []string
}

// Result is the outcome of a successful verification: every policy covering
// the bundle admitted it.
type Result struct {
	// Policy names the policy that admitted the bundle: the first (by name)
	// whose key signed it, or the first covering policy when Unsigned.
	Policy string
	// KeyName is the TrustedKey name that verified; empty when Unsigned.
	KeyName string
	// Fingerprint is "SHA256:<hex>" of that key; empty when Unsigned.
	Fingerprint string
	// Unsigned is true when no key signed the bundle and it was admitted
	// only because every covering policy allows unsigned bundles.
	Unsigned bool
	// Signatures holds, for every covering policy that names keys, its key
	// that signed, sorted by policy name; Policy, KeyName and Fingerprint
	// are the first.
	Signatures []Signature
	// Limits are the allow-lists of every covering policy. A bundle must
	// satisfy all of them: policies combine by intersection.
	Limits []Limit
}

// Signer describes who admitted the bundle, for BpfProgram.status.signer:
// "policy/key SHA256:ab12…" (16 hex digits) for each covering policy that
// names keys, comma separated, or "policy (unsigned, allowed by policy)".
func (r Result) Signer() string {
	if r.Unsigned {
		return r.Policy + " (unsigned, allowed by policy)"
	}
	sigs := r.Signatures
	if len(sigs) == 0 {
		sigs = []Signature{{Policy: r.Policy, KeyName: r.KeyName, Fingerprint: r.Fingerprint}}
	}
	parts := make([]string, len(sigs))
	for i, s := range sigs {
		fp := s.Fingerprint
		if len(fp) > len("SHA256:")+16 {
			fp = fp[:len("SHA256:")+16] + "…"
		}
		parts[i] = s.Policy + "/" + s.KeyName + " " + fp
	}
	return strings.Join(parts, ", ")
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

// ResolveKeys returns the policy's usable keys, PEM inline or from
// KeySource, each parsed and fingerprinted. A key that cannot be had is
// skipped, not fatal: the other keys of the policy still count. The error
// joins one error per skipped key (nil when none was); it wraps
// bundles.ErrKeyUnavailable when reading one may succeed later (an API
// error), ErrSecretRefRefused or a parse error otherwise.
func (v *Verifier) ResolveKeys(ctx context.Context, policy v1alpha1.BundleTrustPolicy) ([]Key, error) {
	keys := make([]Key, 0, len(policy.Spec.Keys))
	var skipped []error
	for _, k := range policy.Spec.Keys {
		key, err := v.resolveKey(ctx, policy.Name, k)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("policy %s key %s: %w", policy.Name, k.Name, err))
			continue
		}
		keys = append(keys, key)
	}
	return keys, errors.Join(skipped...)
}

func (v *Verifier) resolveKey(ctx context.Context, policy string, k v1alpha1.TrustedKey) (Key, error) {
	pem := []byte(k.PublicKey)
	if k.SecretRef != nil {
		if v.Keys == nil {
			return Key{}, ErrSecretRefRefused
		}
		ref := *k.SecretRef
		if ref.Key == "" {
			ref.Key = DefaultSecretKey
		}
		var err error
		if pem, err = v.Keys(ctx, ref); err != nil {
			return Key{}, fmt.Errorf("read secret %s/%s: %w", ref.Namespace, ref.Name, err)
		}
	}
	fp, err := signing.Fingerprint(pem)
	if err != nil {
		return Key{}, err
	}
	return Key{Policy: policy, Name: k.Name, PEM: pem, Fingerprint: fp}, nil
}

// Covering returns the policies that cover repository, sorted by name.
func Covering(policies []v1alpha1.BundleTrustPolicy, repository string) []v1alpha1.BundleTrustPolicy {
	var covering []v1alpha1.BundleTrustPolicy
	for _, p := range policies {
		if Covers(p, repository) {
			covering = append(covering, p)
		}
	}
	slices.SortFunc(covering, func(a, b v1alpha1.BundleTrustPolicy) int { return strings.Compare(a.Name, b.Name) })
	return covering
}

// Limits returns the allow-lists of policies, for checks that need no
// signature (Check* on a Result{Limits: Limits(Covering(...))}).
func Limits(policies []v1alpha1.BundleTrustPolicy) []Limit {
	out := make([]Limit, 0, len(policies))
	for _, p := range policies {
		out = append(out, Limit{Policy: p.Name, ProgramTypes: p.Spec.AllowedProgramTypes, AttachTypes: p.Spec.AllowedAttachTypes})
	}
	return out
}

// Verify admits repository@digest when every policy covering repository
// admits it (policies combine by intersection, never by union):
//
//   - a policy that names keys admits the digest when one of its keys
//     signed it; with allowUnsigned it also admits a digest that carries no
//     signature at all, never one whose signatures fail its keys;
//   - a policy without keys (allowUnsigned) admits any digest.
//
// So once any covering policy names keys, a signature mismatch is refused,
// whatever a more lenient policy says. Signatures are read once for all
// covering keys; a key that cannot be read is skipped (ResolveKeys). Errors
// wrap bundles.ErrNoTrustPolicy, ErrUnsigned, ErrSignatureMismatch,
// ErrRegistryUnavailable, and for a refusing policy whose keys were
// skipped, ErrSecretRefRefused, a parse error, or ErrKeyUnavailable: callers
// treat ErrKeyUnavailable (checked first) as transient, as they do
// ErrRegistryUnavailable.
func (v *Verifier) Verify(ctx context.Context, repository, digest string, policies []v1alpha1.BundleTrustPolicy) (Result, error) {
	covering := Covering(policies, repository)
	if len(covering) == 0 {
		return Result{}, fmt.Errorf("%w: %s (%d policies checked)", bundles.ErrNoTrustPolicy, repository, len(policies))
	}

	keyErrs := map[string]error{}
	var keys []Key
	for _, p := range covering {
		k, err := v.ResolveKeys(ctx, p)
		if err != nil {
			keyErrs[p.Name] = err // skipped keys; the others still count
		}
		keys = append(keys, k...)
	}

	signed := map[string]Key{} // by policy: its first key that signed
	var sigErr error
	if len(keys) > 0 {
		pems := make([][]byte, len(keys))
		for i, k := range keys {
			pems[i] = k.PEM
		}
		idx, err := v.Signatures.VerifyKeys(ctx, repository, digest, pems, v.Remote)
		if err != nil && !errors.Is(err, bundles.ErrUnsigned) && !errors.Is(err, bundles.ErrSignatureMismatch) {
			return Result{}, err // registry trouble: never fall back to unsigned
		}
		sigErr = err
		for _, i := range idx {
			if _, ok := signed[keys[i].Policy]; !ok {
				signed[keys[i].Policy] = keys[i]
			}
		}
	}

	res := Result{Limits: Limits(covering)}
	var refused []error
	for _, p := range covering {
		k, ok := signed[p.Name]
		switch {
		case ok:
			res.Signatures = append(res.Signatures, Signature{Policy: p.Name, KeyName: k.Name, Fingerprint: k.Fingerprint})
		case len(p.Spec.Keys) == 0 && p.Spec.AllowUnsigned:
			// Names no key: admits whatever the other covering policies admit.
		case len(p.Spec.Keys) > 0 && p.Spec.AllowUnsigned && errors.Is(sigErr, bundles.ErrUnsigned):
			// No signature at all, which this policy allows.
		default:
			refused = append(refused, refusal(p, sigErr, keyErrs[p.Name]))
		}
	}
	if len(refused) > 0 {
		return Result{}, errors.Join(refused...)
	}
	if len(res.Signatures) == 0 {
		res.Policy, res.Unsigned = covering[0].Name, true
		return res, nil
	}
	first := res.Signatures[0]
	res.Policy, res.KeyName, res.Fingerprint = first.Policy, first.KeyName, first.Fingerprint
	return res, nil
}

// refusal says why policy p did not admit a digest: sigErr is what checking
// the signatures against every covering key gave (nil when some key
// verified, but none of p's), keyErr why p's keys could not be used.
func refusal(p v1alpha1.BundleTrustPolicy, sigErr, keyErr error) error {
	var err error
	switch {
	case len(p.Spec.Keys) == 0:
		err = fmt.Errorf("%w: names no key and does not allow unsigned bundles", bundles.ErrSignatureMismatch)
	case errors.Is(sigErr, bundles.ErrUnsigned):
		err = sigErr
	default:
		err = fmt.Errorf("%w: none of its %d key(s) signed the bundle", bundles.ErrSignatureMismatch, len(p.Spec.Keys))
		if sigErr != nil {
			err = fmt.Errorf("%w: %w", err, sigErr)
		}
	}
	if keyErr != nil {
		err = errors.Join(err, keyErr)
	}
	return fmt.Errorf("trust policy %s refuses: %w", p.Name, err)
}

// CheckProgramTypes refuses (bundles.ErrProgramTypeDenied) a manifest with a
// program type outside the allow-list of any of r.Limits.
func CheckProgramTypes(r Result, m *format.Manifest) error {
	for _, l := range r.Limits {
		if len(l.ProgramTypes) == 0 {
			continue
		}
		for _, p := range m.Programs {
			if !slices.Contains(l.ProgramTypes, p.Type) {
				return fmt.Errorf("%w: program %s is %s, policy %s allows only %s",
					bundles.ErrProgramTypeDenied, p.Name, p.Type, l.Policy, strings.Join(l.ProgramTypes, ", "))
			}
		}
	}
	return nil
}

// CheckAttachTypes refuses (bundles.ErrAttachTypeDenied) an attach block of
// programs whose hook (hooks.AttachType) is outside the allowedAttachTypes
// of any of r.Limits.
func CheckAttachTypes(r Result, programs []v1alpha1.ProgramAttachment) error {
	for _, l := range r.Limits {
		if len(l.AttachTypes) == 0 {
			continue
		}
		for _, a := range programs {
			hook := hooks.AttachType(a)
			if !slices.ContainsFunc(l.AttachTypes, func(allowed string) bool {
				m, err := path.Match(allowed, hook)
				return err == nil && m
			}) {
				return fmt.Errorf("%w: program %s attaches to %s, policy %s allows only %s",
					bundles.ErrAttachTypeDenied, a.Name, hook, l.Policy, strings.Join(l.AttachTypes, ", "))
			}
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
	if repository == "" || strings.HasPrefix(repository, "/") || strings.HasSuffix(repository, "/") || strings.Contains(repository, "//") {
		return false // an empty path segment: no repository ("a/" must not pass as below "a/**")
	}
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
