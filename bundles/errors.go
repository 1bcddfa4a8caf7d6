// Package bundles holds what every bundle package shares: the sentinel errors
// callers test with errors.Is. The work itself lives in the subpackages:
// format (media types, manifest, limits), build (bundle.yaml + ELF to an OCI
// layout), remote (push, pull, resolve with oras-go), cache (node-local
// content-addressed store), signing (cosign keys) and trust
// (BundleTrustPolicy evaluation).
package bundles

import "errors"

// Sentinel errors. Every error the bundle packages return for one of these
// conditions wraps the matching sentinel, with details in the message.
var (
	// ErrUnsigned: the bundle carries no signature at all.
	ErrUnsigned = errors.New("bundle is not signed")
	// ErrSignatureMismatch: signatures exist, but none verifies against a
	// trusted key for this digest.
	ErrSignatureMismatch = errors.New("no signature matches a trusted key")
	// ErrDigestMismatch: content read back does not hash to its digest.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrNoTrustPolicy: no BundleTrustPolicy covers the bundle's repository.
	ErrNoTrustPolicy = errors.New("no trust policy covers the bundle")
	// ErrBundleInvalid: the bundle or bundle.yaml breaks the format rules.
	ErrBundleInvalid = errors.New("invalid bundle")
	// ErrTooLarge: a size or count limit of the format is exceeded.
	ErrTooLarge = errors.New("bundle exceeds a limit")
	// ErrNotFound: the registry or cache has no such reference or digest.
	ErrNotFound = errors.New("bundle not found")
	// ErrProgramTypeDenied: a trust policy does not allow a program type the
	// bundle contains.
	ErrProgramTypeDenied = errors.New("program type denied by trust policy")
	// ErrAttachTypeDenied: a trust policy does not allow a hook a program
	// of the bundle is to be attached to.
	ErrAttachTypeDenied = errors.New("attach type denied by trust policy")
	// ErrManifestMismatch: the bundle manifest does not describe its ELF
	// objects (a program's type, attach type or section differs), so no
	// check made on the manifest would hold for what the kernel loads.
	ErrManifestMismatch = errors.New("manifest does not match the ELF object")
	// ErrKeyUnavailable: a trust policy's key could not be read (the API
	// server failed or refused to serve its Secret); retrying soon may help,
	// unlike a key that is missing or does not parse.
	ErrKeyUnavailable = errors.New("trust key unavailable")
	// ErrRegistryUnavailable: the registry could not be reached or answered
	// with a server error; retrying later may help.
	ErrRegistryUnavailable = errors.New("registry unavailable")
	// ErrRegistryDenied: the registry refused the credentials (401) or
	// the access (403); fix the credentials its registries config names.
	ErrRegistryDenied = errors.New("registry denied access")
)
