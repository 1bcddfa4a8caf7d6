// Package remote pushes, pulls and resolves bundles in OCI registries with
// oras-go v2. Every blob read is checked against its digest; plain HTTP is
// used only for loopback registries, hosts the registries config (Config)
// marks plainHTTP, or when Options.Insecure is set.
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/internal/ocibundle"
)

// Options configure registry access.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS to a host that is not loopback;
	// it needs Insecure too. Loopback hosts (127.0.0.0/8, ::1, localhost)
	// always get plain HTTP.
	PlainHTTP bool
	// Insecure allows PlainHTTP for any host, and otherwise skips TLS
	// certificate verification.
	Insecure bool
	// DockerConfig is the path of a docker config.json with credentials;
	// empty means $DOCKER_CONFIG/config.json or ~/.docker/config.json.
	DockerConfig string
	// Timeout bounds each operation; zero means DefaultTimeout.
	Timeout time.Duration
	// Registries are per-host settings (CA bundle, plain HTTP, skipped TLS
	// verification) from the registries config; see Config. A host listed
	// here follows its entry, not PlainHTTP's loopback rule nor Insecure.
	Registries []Registry
}

// DefaultTimeout bounds an operation when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ErrPlainHTTPRefused: PlainHTTP asked for a non-loopback host without Insecure.
var ErrPlainHTTPRefused = errors.New("plain HTTP to a non-loopback registry needs Insecure")

// Client talks to OCI registries. It is safe for concurrent use.
type Client struct {
	opts      Options
	http      *http.Client
	cache     auth.Cache
	creds     credentials.Store
	credEr    error
	transport http.RoundTripper
}

// New returns a client with opts.
func New(opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	guarded := schemeGuard{base: sharedTransport(transportKey{insecure: opts.Insecure, timeout: opts.Timeout}, nil), opts: opts,
		hosts: map[string]http.RoundTripper{}, hostErrs: map[string]error{}}
	for _, r := range opts.Registries {
		// A listed host follows its entry, not the global Insecure: an
		// entry with a CA bundle is verified with it, one without against
		// the system roots, unless the entry itself says insecureSkipVerify.
		key := transportKey{insecure: r.InsecureSkipVerify, timeout: opts.Timeout}
		var pool *x509.CertPool
		if r.CA != "" && !key.insecure {
			var err error
			if pool, err = loadCA(r.CA); err != nil {
				guarded.hostErrs[r.Host] = fmt.Errorf("registry %s: %w", r.Host, err)
				continue
			}
			key.ca = caKey(r.CA)
		}
		guarded.hosts[r.Host] = sharedTransport(key, pool)
	}
	c := &Client{
		opts:      opts,
		http:      &http.Client{Transport: guarded},
		cache:     auth.NewCache(),
		transport: guarded,
	}
	c.creds, c.credEr = opts.CredentialStore()
	return c
}

// transportKey is what makes two transports differ.
type transportKey struct {
	insecure bool
	timeout  time.Duration
	ca       string // caKey of the CA bundle; "" for the system roots
}

// transports pools connections across Clients: callers such as
// trust.Verifier make a Client per call, and a transport per Client would
// leave idle connections (file descriptors) behind each one.
var transports sync.Map // transportKey -> *http.Transport

func sharedTransport(key transportKey, roots *x509.CertPool) *http.Transport {
	if t, ok := transports.Load(key); ok {
		return t.(*http.Transport)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: key.timeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = key.timeout
	t.ResponseHeaderTimeout = key.timeout
	switch {
	case key.insecure:
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by Options.Insecure or the host's insecureSkipVerify
	case roots != nil:
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	actual, _ := transports.LoadOrStore(key, t)
	return actual.(*http.Transport)
}

// schemeGuard upgrades plain-HTTP requests to HTTPS for hosts the
// plain-HTTP rule does not allow, and sends each host's requests through
// the transport its registries-config entry asks for (CA bundle, skipped
// verification). oras-go already obeys the rule through
// Repository.PlainHTTP; go-containerregistry (used by cosign) picks HTTP on
// its own for loopback, RFC 1918 and .local hosts, which this guard overrides.
type schemeGuard struct {
	base     http.RoundTripper
	opts     Options
	hosts    map[string]http.RoundTripper // by Registry.Host
	hostErrs map[string]error             // a host whose CA could not be read
}

func (g schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		if plain, _ := UsePlainHTTP(g.opts, req.URL.Host); !plain {
			req = req.Clone(req.Context())
			req.URL.Scheme = "https"
		}
	}
	if r, ok := g.opts.registry(req.URL.Host); ok {
		if err := g.hostErrs[r.Host]; err != nil {
			return nil, err
		}
		if t := g.hosts[r.Host]; t != nil {
			return t.RoundTrip(req)
		}
	}
	return g.base.RoundTrip(req)
}

// CredentialStore opens the docker config credentials opts name.
func (o Options) CredentialStore() (credentials.Store, error) {
	if o.DockerConfig != "" {
		return credentials.NewStore(o.DockerConfig, credentials.StoreOptions{})
	}
	return credentials.NewStoreFromDocker(credentials.StoreOptions{})
}

// Transport returns the HTTP transport the client uses (timeouts, TLS
// settings and the plain-HTTP rule applied), for other registry libraries
// (go-containerregistry under cosign) to share.
func (c *Client) Transport() http.RoundTripper { return c.transport }

// Options returns the options the client was made with (Timeout defaulted).
func (c *Client) Options() Options { return c.opts }

// Repository returns an oras-go repository for ref's repository, with
// credentials, timeouts and the plain-HTTP rule applied.
func (c *Client) Repository(ref Reference) (*remote.Repository, error) {
	if c.credEr != nil {
		return nil, fmt.Errorf("load docker credentials: %w", c.credEr)
	}
	plain, err := UsePlainHTTP(c.opts, ref.Registry)
	if err != nil {
		return nil, err
	}
	repo, err := remote.NewRepository(ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("%w: repository %q: %w", bundles.ErrBundleInvalid, ref.Repository, err)
	}
	repo.PlainHTTP = plain
	repo.Client = &auth.Client{
		Client:     c.http,
		Cache:      c.cache,
		Credential: credentials.Credential(c.creds),
	}
	return repo, nil
}

// UsePlainHTTP applies the plain-HTTP rule for host: as its registries
// config entry says when it has one; else always for loopback, with
// PlainHTTP only when Insecure too, never otherwise.
func UsePlainHTTP(opts Options, host string) (bool, error) {
	if r, ok := opts.registry(host); ok {
		return r.PlainHTTP, nil
	}
	if IsLoopback(host) {
		return true, nil
	}
	if opts.PlainHTTP {
		if !opts.Insecure {
			return false, fmt.Errorf("%w: %s", ErrPlainHTTPRefused, host)
		}
		return true, nil
	}
	return false, nil
}

// IsLoopback tells whether host[:port] names the loopback interface.
func IsLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Resolve returns the manifest digest (sha256:…) a tag or digest reference
// points to. Errors wrap bundles.ErrNotFound or bundles.ErrRegistryUnavailable.
func (c *Client) Resolve(ctx context.Context, ref string) (digest string, err error) {
	r, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	desc, err := c.resolve(ctx, r)
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

func (c *Client) resolve(ctx context.Context, r Reference) (ocispec.Descriptor, error) {
	repo, err := c.Repository(r)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	target := r.Tag
	if r.Digest != "" {
		target = r.Digest
	}
	desc, err := repo.Resolve(ctx, target)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", r, classify(err))
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return ocispec.Descriptor{}, fmt.Errorf("%w: %s is a %s, not an OCI image manifest", bundles.ErrBundleInvalid, r, desc.MediaType)
	}
	return desc, nil
}

// Fetch downloads the bundle repository@digest and checks every blob against
// its digest and the format limits (see format.Assemble).
func (c *Client) Fetch(ctx context.Context, repository, digest string) (*format.Bundle, error) {
	var b *format.Bundle
	err := c.fetch(ctx, repository, digest, func(ctx context.Context, repo *remote.Repository, r Reference, desc ocispec.Descriptor) (err error) {
		b, err = ocibundle.Read(ctx, repo, r.Repository, desc)
		return err
	})
	return b, err
}

// FetchManifest downloads only the image manifest and the config blob of
// the bundle repository@digest, never its ELF layers, checks them as Fetch
// does, and returns the bundle's manifest: what the operator needs.
func (c *Client) FetchManifest(ctx context.Context, repository, digest string) (*format.Manifest, error) {
	var m *format.Manifest
	err := c.fetch(ctx, repository, digest, func(ctx context.Context, repo *remote.Repository, r Reference, desc ocispec.Descriptor) (err error) {
		m, err = ocibundle.ReadManifest(ctx, repo, r.Repository, desc)
		return err
	})
	return m, err
}

func (c *Client) fetch(ctx context.Context, repository, digest string,
	read func(context.Context, *remote.Repository, Reference, ocispec.Descriptor) error) error {
	r, err := ParseReference(repository + "@" + digest)
	if err != nil {
		return err
	}
	desc, err := c.resolve(ctx, r)
	if err != nil {
		return err
	}
	if desc.Digest.String() != digest {
		return fmt.Errorf("%w: registry answered %s for %s", bundles.ErrDigestMismatch, desc.Digest, r)
	}
	repo, err := c.Repository(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	if err := read(ctx, repo, r, desc); err != nil {
		return fmt.Errorf("fetch %s: %w", r, classify(err))
	}
	return nil
}

// Push copies the bundle named ref (or ref's tag or digest) in the OCI
// layout in layoutDir to ref, after checking it is a valid bundle, and
// returns the manifest digest.
func (c *Client) Push(ctx context.Context, layoutDir, ref string) (digest string, err error) {
	r, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	store, err := oci.NewWithContext(ctx, layoutDir)
	if err != nil {
		return "", fmt.Errorf("open layout %s: %w", layoutDir, err)
	}
	// Layout entries are named by the full reference (as build does), or
	// by tag or digest alone (as oras does).
	srcRef := r.Tag
	if r.Digest != "" {
		srcRef = r.Digest
	}
	desc, err := store.Resolve(ctx, r.String())
	if err != nil {
		desc, err = store.Resolve(ctx, srcRef)
	}
	if err != nil {
		return "", fmt.Errorf("find %s in layout %s: %w", r, layoutDir, ocibundle.Classify(err))
	}
	if _, err := ocibundle.Read(ctx, store, r.Repository, desc); err != nil {
		return "", fmt.Errorf("check %s in layout %s: %w", srcRef, layoutDir, err)
	}
	repo, err := c.Repository(r)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	if _, err := oras.Copy(ctx, store, desc.Digest.String(), repo, srcRef, oras.DefaultCopyOptions); err != nil {
		return "", fmt.Errorf("push %s: %w", r, classify(err))
	}
	return desc.Digest.String(), nil
}

// classify wraps transport and registry errors in bundles sentinels.
func classify(err error) error {
	var resp *errcode.ErrorResponse
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.Is(err, bundles.ErrDigestMismatch), errors.Is(err, bundles.ErrNotFound),
		errors.Is(err, bundles.ErrRegistryUnavailable), errors.Is(err, bundles.ErrBundleInvalid),
		errors.Is(err, bundles.ErrTooLarge):
		return err
	case strings.Contains(err.Error(), "mismatch Content-Length"):
		// oras-go reports a body longer or shorter than the descriptor
		// with a plain error: the content does not match what was signed.
		return fmt.Errorf("%w: %w", bundles.ErrDigestMismatch, err)
	case errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w (HTTP %d; check the credentials for this registry): %w", bundles.ErrRegistryDenied, resp.StatusCode, err)
	case errors.As(err, &resp) && resp.StatusCode >= 500:
		return fmt.Errorf("%w: %w", bundles.ErrRegistryUnavailable, err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", bundles.ErrNotFound, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.As(err, &netErr), errors.As(err, &urlErr):
		return fmt.Errorf("%w: %w", bundles.ErrRegistryUnavailable, err)
	}
	return ocibundle.Classify(err)
}
