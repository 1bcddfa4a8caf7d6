// Package signing signs and verifies bundles with cosign v2 used as a
// library, with keys only and fully offline: no transparency log, no
// certificate authority, no TUF. Signatures are stored the way stock cosign
// stores them (the sha256-<hex>.sig tag), so `cosign sign --key k
// --tlog-upload=false` and `cosign verify --key k.pub --insecure-ignore-tlog`
// interoperate with this package.
package signing

import (
	"context"
	"errors"

	"github.com/bpfleet/bpfleet/bundles/remote"
)

// PasswordEnv is the environment variable cosign reads key passwords from.
const PasswordEnv = "COSIGN_PASSWORD"

var errNotImplemented = errors.New("not implemented yet")

// Sign signs the manifest digest ref points to (repo@digest, or a tag
// resolved first) with the cosign private key at keyPath, decrypted with
// password, and pushes the signature to the .sig tag next to it.
func Sign(ctx context.Context, ref, keyPath string, password []byte, opts remote.Options) error {
	return errNotImplemented
}

// GenerateKeyPair writes cosign.key (encrypted with password) and cosign.pub
// into dir, refusing to overwrite, like `cosign generate-key-pair`.
func GenerateKeyPair(dir string, password []byte) (privPath, pubPath string, err error) {
	return "", "", errNotImplemented
}

// Verify checks that one of pubKeysPEM signed repository@digest and returns
// the index of the first key that did. Errors wrap bundles.ErrUnsigned (no
// signature), bundles.ErrSignatureMismatch (none verifies),
// bundles.ErrRegistryUnavailable or bundles.ErrBundleInvalid (a key does not parse).
func Verify(ctx context.Context, repository, digest string, pubKeysPEM [][]byte, opts remote.Options) (keyIndex int, err error) {
	return -1, errNotImplemented
}

// Fingerprint returns "SHA256:<hex>" of the DER public key in pubPEM.
func Fingerprint(pubPEM []byte) (string, error) {
	return "", errNotImplemented
}
