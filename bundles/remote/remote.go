// Package remote pushes, pulls and resolves bundles in OCI registries with
// oras-go v2. Every blob read is checked against its digest; plain HTTP is
// used only for loopback registries or when Options.Insecure is set.
package remote

import (
	"context"
	"errors"
	"time"

	"github.com/bpfleet/bpfleet/bundles/format"
)

// Options configure registry access.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS. It is allowed automatically for
	// loopback hosts (127.0.0.0/8, ::1, localhost); for any other host it
	// needs Insecure too.
	PlainHTTP bool
	// Insecure allows plain HTTP and skips TLS verification for any host.
	Insecure bool
	// DockerConfig is the path of a docker config.json with credentials;
	// empty means $DOCKER_CONFIG/config.json or ~/.docker/config.json.
	DockerConfig string
	// Timeout bounds each operation; zero means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds an operation when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Client talks to OCI registries. It is safe for concurrent use.
type Client struct {
	opts Options
}

// New returns a client with opts.
func New(opts Options) *Client {
	return &Client{opts: opts}
}

var errNotImplemented = errors.New("not implemented yet")

// Resolve returns the manifest digest (sha256:…) a tag or digest reference
// points to. Errors wrap bundles.ErrNotFound or bundles.ErrRegistryUnavailable.
func (c *Client) Resolve(ctx context.Context, ref string) (digest string, err error) {
	return "", errNotImplemented
}

// Fetch downloads the bundle repository@digest and checks every blob against
// its digest and the format limits (see format.Assemble).
func (c *Client) Fetch(ctx context.Context, repository, digest string) (*format.Bundle, error) {
	return nil, errNotImplemented
}

// Push copies the bundle tagged or digested by ref's tag from the OCI layout
// in layoutDir to ref, and returns the manifest digest.
func (c *Client) Push(ctx context.Context, layoutDir, ref string) (digest string, err error) {
	return "", errNotImplemented
}
