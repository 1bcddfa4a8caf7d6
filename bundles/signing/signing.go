// Package signing signs and verifies bundles with cosign v2 used as a
// library, with keys only and fully offline: no transparency log, no
// certificate authority, no TUF. Signatures are stored the way stock cosign
// stores them (a simple-signing payload in the sha256-<hex>.sig tag), so
// `cosign sign --key k --tlog-upload=false` and `cosign verify --key k.pub
// --insecure-ignore-tlog` interoperate with this package.
package signing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/remote"
)

// PasswordEnv is the environment variable cosign reads key passwords from.
const PasswordEnv = "COSIGN_PASSWORD"

// Key file names GenerateKeyPair writes, as cosign does.
const (
	PrivateKeyFile = "cosign.key"
	PublicKeyFile  = "cosign.pub"
)

// Sign signs the manifest digest ref points to (repo@digest, or a tag
// resolved first) with the cosign private key at keyPath, decrypted with
// password, and pushes the signature to the .sig tag next to it, keeping
// signatures already there. It returns errors wrapping
// bundles.ErrRegistryUnavailable and bundles.ErrNotFound where they apply.
func Sign(ctx context.Context, ref, keyPath string, password []byte, opts remote.Options) error {
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	sv, err := cosign.LoadPrivateKey(keyPEM, password, nil)
	if err != nil {
		return fmt.Errorf("load key %s: %w", keyPath, err)
	}
	return SignWith(ctx, ref, sv, opts)
}

// SignWith is Sign with a loaded cosign signer.
func SignWith(ctx context.Context, ref string, sv signature.SignerVerifier, opts remote.Options) error {
	client := remote.New(opts)
	opts = client.Options()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	r, err := remote.ParseReference(ref)
	if err != nil {
		return err
	}
	d := r.Digest
	if d == "" {
		if d, err = client.Resolve(ctx, ref); err != nil {
			return err
		}
	}
	digestRef, ociOpts, err := registryOptions(ctx, client, r.Repository, d)
	if err != nil {
		return err
	}
	// The steps of cosign's signDigest for a key without tlog upload,
	// certificate or timestamp authority (cmd/cosign/cli/sign/sign.go).
	pl, err := (&payload.Cosign{Image: digestRef}).MarshalJSON()
	if err != nil {
		return fmt.Errorf("make payload: %w", err)
	}
	raw, err := sv.SignMessage(bytes.NewReader(pl), options.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return fmt.Errorf("make signature: %w", err)
	}
	se, err := ociremote.SignedEntity(digestRef, ociOpts...)
	if err != nil {
		return fmt.Errorf("read %s: %w", digestRef, classify(err))
	}
	signed, err := mutate.AttachSignatureToEntity(se, sig, mutate.WithDupeDetector(cremote.NewDupeDetector(sv)))
	if err != nil {
		return fmt.Errorf("attach signature: %w", err)
	}
	if err := ociremote.WriteSignatures(digestRef.Repository, signed, ociOpts...); err != nil {
		return fmt.Errorf("push signature of %s: %w", digestRef, classify(err))
	}
	return nil
}

// GenerateKeyPair writes cosign.key (ECDSA P-256, encrypted with password in
// cosign's format) and cosign.pub into dir, refusing to overwrite, like
// `cosign generate-key-pair`.
func GenerateKeyPair(dir string, password []byte) (privPath, pubPath string, err error) {
	keys, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return "", "", fmt.Errorf("generate key pair: %w", err)
	}
	privPath = filepath.Join(dir, PrivateKeyFile)
	pubPath = filepath.Join(dir, PublicKeyFile)
	if err := writeNew(privPath, keys.PrivateBytes, 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(pubPath, keys.PublicBytes, 0o644); err != nil {
		os.Remove(privPath)
		return "", "", err
	}
	return privPath, pubPath, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	return f.Close()
}

// Verify checks that one of pubKeysPEM signed repository@digest and returns
// the index of the first key that did. Each signature goes through cosign's
// own per-signature check (cosign.VerifyImageSignature, as `cosign verify`
// does) with SimpleClaimVerifier, so a signature copied onto another digest
// is refused; the transparency log and SCT checks are off because trust comes
// from the keys alone. Errors wrap bundles.ErrUnsigned (no signature),
// bundles.ErrSignatureMismatch (none verifies), bundles.ErrRegistryUnavailable
// or bundles.ErrBundleInvalid (a key does not parse).
func Verify(ctx context.Context, repository, digest string, pubKeysPEM [][]byte, opts remote.Options) (keyIndex int, err error) {
	signed, err := VerifyKeys(ctx, repository, digest, pubKeysPEM, opts)
	if err != nil {
		return -1, err
	}
	return signed[0], nil
}

// VerifyKeys is Verify for callers that must know every key that signed
// (trust policies that must each be satisfied): it reads the signatures
// once and returns the indexes of all keys with a signature that verifies,
// in order, never empty. Errors are Verify's.
func VerifyKeys(ctx context.Context, repository, digest string, pubKeysPEM [][]byte, opts remote.Options) ([]int, error) {
	if len(pubKeysPEM) == 0 {
		return nil, fmt.Errorf("%w: no public key to verify with", bundles.ErrSignatureMismatch)
	}
	verifiers := make([]signature.Verifier, len(pubKeysPEM))
	for i, pemBytes := range pubKeysPEM {
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: public key %d: %w", bundles.ErrBundleInvalid, i, err)
		}
		v, err := signature.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%w: public key %d: %w", bundles.ErrBundleInvalid, i, err)
		}
		verifiers[i] = v
	}
	client := remote.New(opts)
	opts = client.Options()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	digestRef, ociOpts, err := registryOptions(ctx, client, repository, digest)
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("%w: digest %q: %w", bundles.ErrBundleInvalid, digest, err)
	}
	sigTag, err := ociremote.SignatureTag(digestRef, ociOpts...)
	if err != nil {
		return nil, fmt.Errorf("signature tag of %s: %w", digestRef, err)
	}
	found, err := ociremote.Signatures(sigTag, ociOpts...)
	if err != nil {
		return nil, fmt.Errorf("read signatures of %s: %w", digestRef, classify(err))
	}
	list, err := found.Get()
	if err != nil {
		return nil, fmt.Errorf("read signatures of %s: %w", digestRef, classify(err))
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: %s has no signature at %s", bundles.ErrUnsigned, digestRef, sigTag)
	}
	var signed []int
	var errs []error
	for i, v := range verifiers {
		co := &cosign.CheckOpts{
			SigVerifier:   v,
			ClaimVerifier: cosign.SimpleClaimVerifier, // binds the signature to this digest
			IgnoreTlog:    true,                       // keys only: no Rekor
			IgnoreSCT:     true,                       // keys only: no Fulcio certificate
			Offline:       true,
		}
		for _, sig := range list {
			if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err != nil {
				errs = append(errs, err)
				continue
			}
			signed = append(signed, i)
			break
		}
	}
	if len(signed) > 0 {
		return signed, nil
	}
	return nil, fmt.Errorf("%w: %d signature(s) of %s, none verifies with the %d key(s): %w",
		bundles.ErrSignatureMismatch, len(list), digestRef, len(verifiers), errors.Join(errs...))
}

// Count returns how many signatures the .sig tag of repository@digest holds
// (verified or not).
func Count(ctx context.Context, repository, digest string, opts remote.Options) (int, error) {
	client := remote.New(opts)
	ctx, cancel := context.WithTimeout(ctx, client.Options().Timeout)
	defer cancel()
	digestRef, ociOpts, err := registryOptions(ctx, client, repository, digest)
	if err != nil {
		return 0, err
	}
	sigTag, err := ociremote.SignatureTag(digestRef, ociOpts...)
	if err != nil {
		return 0, err
	}
	found, err := ociremote.Signatures(sigTag, ociOpts...)
	if err != nil {
		return 0, fmt.Errorf("read signatures of %s: %w", digestRef, classify(err))
	}
	list, err := found.Get()
	if err != nil {
		return 0, fmt.Errorf("read signatures of %s: %w", digestRef, classify(err))
	}
	return len(list), nil
}

// Fingerprint returns "SHA256:<hex>" of the DER public key in pubPEM.
func Fingerprint(pubPEM []byte) (string, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return "", fmt.Errorf("%w: parse public key: %w", bundles.ErrBundleInvalid, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: encode public key: %w", bundles.ErrBundleInvalid, err)
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + hex.EncodeToString(sum[:]), nil
}

// registryOptions turns remote.Options into go-containerregistry options
// that follow the same rules: plain HTTP only where remote allows it, the
// same docker credentials, the same timeouts.
func registryOptions(ctx context.Context, client *remote.Client, repository, digest string) (name.Digest, []ociremote.Option, error) {
	opts := client.Options()
	r, err := remote.ParseReference(repository + "@" + digest)
	if err != nil {
		return name.Digest{}, nil, err
	}
	plain, err := remote.UsePlainHTTP(opts, r.Registry)
	if err != nil {
		return name.Digest{}, nil, err
	}
	var nameOpts []name.Option
	if plain {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.NewDigest(r.Repository+"@"+digest, nameOpts...)
	if err != nil {
		return name.Digest{}, nil, fmt.Errorf("%w: reference %s@%s: %w", bundles.ErrBundleInvalid, r.Repository, digest, err)
	}
	store, err := opts.CredentialStore()
	if err != nil {
		return name.Digest{}, nil, fmt.Errorf("load docker credentials: %w", err)
	}
	return ref, []ociremote.Option{ociremote.WithRemoteOptions(
		ggcrremote.WithContext(ctx),
		ggcrremote.WithTransport(client.Transport()),
		ggcrremote.WithAuthFromKeychain(keychain{ctx: ctx, store: store}),
	)}, nil
}

// keychain serves go-containerregistry from the oras-go credential store,
// so both libraries read the same docker config the same way.
type keychain struct {
	ctx   context.Context
	store credentials.Store
}

func (k keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	cred, err := k.store.Get(k.ctx, res.RegistryStr())
	if err != nil {
		return nil, err
	}
	if cred.Username == "" && cred.Password == "" && cred.RefreshToken == "" && cred.AccessToken == "" {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      cred.Username,
		Password:      cred.Password,
		IdentityToken: cred.RefreshToken,
		RegistryToken: cred.AccessToken,
	}), nil
}

// classify wraps go-containerregistry errors in bundles sentinels.
func classify(err error) error {
	var te *transport.Error
	var netErr net.Error
	switch {
	case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w (HTTP %d; check the credentials for this registry): %w", bundles.ErrRegistryDenied, te.StatusCode, err)
	case errors.As(err, &te) && te.StatusCode >= 500:
		return fmt.Errorf("%w: %w", bundles.ErrRegistryUnavailable, err)
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", bundles.ErrNotFound, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return fmt.Errorf("%w: %w", bundles.ErrRegistryUnavailable, err)
	}
	var nf *ociremote.EntityNotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", bundles.ErrNotFound, err)
	}
	return err
}
