package remote

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is the registries file both the operator and the agent read
// (--registries-config): per registry host, its CA bundle, plain HTTP or
// skipped TLS verification, and one docker config with the credentials
// (the .dockerconfigjson key of a kubernetes.io/dockerconfigjson Secret,
// mounted as a file).
//
//	credentials: /etc/bpfleet/registry-credentials/.dockerconfigjson
//	registries:
//	  - host: registry.example.com:5000
//	    ca: /etc/bpfleet/registry-ca/ca.crt
//	  - host: 10.0.0.5:5000
//	    plainHTTP: true
//	  - host: lab.example.com
//	    insecureSkipVerify: true
type Config struct {
	// Credentials is the path of a docker config JSON ({"auths": ...});
	// empty means --registry-config, else the docker default.
	Credentials string `json:"credentials,omitempty"`
	// Registries are the hosts with settings of their own; any other host
	// gets HTTPS verified against the system roots (plain HTTP on
	// loopback), as without the file.
	Registries []Registry `json:"registries,omitempty"`
}

// Registry is the settings of one registry host.
type Registry struct {
	// Host is host[:port] exactly as bundle references name it.
	Host string `json:"host"`
	// CA is the path of a PEM bundle of the CAs that sign this host's
	// certificate, used instead of the system roots.
	CA string `json:"ca,omitempty"`
	// PlainHTTP talks HTTP to this host. Without an entry, only loopback
	// hosts get plain HTTP; an entry without it makes even a loopback host
	// use HTTPS.
	PlainHTTP bool `json:"plainHTTP,omitempty"`
	// InsecureSkipVerify accepts any certificate from this host.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// ErrConfigInvalid: the registries config cannot be used.
var ErrConfigInvalid = errors.New("invalid registries config")

// LoadConfig reads and checks the registries config at path: known fields
// only, one entry per host, a host without scheme or path, plain HTTP not
// mixed with TLS settings, every CA file readable PEM.
func LoadConfig(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read registries config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("%w: %s: %w", ErrConfigInvalid, path, err)
	}
	seen := map[string]bool{}
	for i, r := range c.Registries {
		switch {
		case r.Host == "" || strings.ContainsAny(r.Host, "/ ") || strings.Contains(r.Host, "://"):
			return c, fmt.Errorf("%w: %s: registries[%d]: host %q is not host[:port]", ErrConfigInvalid, path, i, r.Host)
		case seen[r.Host]:
			return c, fmt.Errorf("%w: %s: registries[%d]: host %s listed twice", ErrConfigInvalid, path, i, r.Host)
		case r.PlainHTTP && (r.CA != "" || r.InsecureSkipVerify):
			return c, fmt.Errorf("%w: %s: registries[%d]: %s: plainHTTP has no TLS to take a CA or insecureSkipVerify", ErrConfigInvalid, path, i, r.Host)
		}
		seen[r.Host] = true
		if r.CA != "" {
			if _, err := loadCA(r.CA); err != nil {
				return c, fmt.Errorf("%w: %s: registries[%d]: %w", ErrConfigInvalid, path, i, err)
			}
		}
	}
	return c, nil
}

// Apply puts c into o: its registries, and its credentials unless o names
// a docker config already (--registry-config wins).
func (c Config) Apply(o *Options) {
	o.Registries = append([]Registry(nil), c.Registries...)
	if o.DockerConfig == "" {
		o.DockerConfig = c.Credentials
	}
}

// registry returns the settings of host, if it has an entry.
func (o Options) registry(host string) (Registry, bool) {
	for _, r := range o.Registries {
		if strings.EqualFold(r.Host, host) {
			return r, true
		}
	}
	// "host" also matches "host:443", the default HTTPS port.
	if h, port, err := net.SplitHostPort(host); err == nil && port == "443" {
		return o.registry(h)
	}
	return Registry{}, false
}

// loadCA reads a PEM CA bundle and returns its pool.
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// caKey identifies a CA bundle's content, so a rotated bundle (a
// ConfigMap update) gets a transport of its own.
func caKey(path string) string {
	pem, err := os.ReadFile(path)
	if err != nil {
		return "unreadable:" + path
	}
	sum := sha256.Sum256(pem)
	return fmt.Sprintf("%x", sum[:8])
}
