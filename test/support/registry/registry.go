// Package registry starts real OCI registries on 127.0.0.1 for tests.
//
// Start runs go-containerregistry's registry in process (under httptest),
// with blobs in memory so a test can tamper with them (TamperBlob) and count
// reads (BlobGets). StartDistribution runs Debian's docker-registry binary
// (github.com/docker/distribution) on a free loopback port, with its storage
// in a temporary directory. Both stop when the test ends; Stop stops them
// earlier to simulate a registry outage.
//
// Options.Username/Password put the in-process registry behind HTTP basic
// auth; DockerConfig writes a docker config.json with credentials for it.
// Options.TLS serves it over HTTPS with a certificate of a CA made for it
// (CAFile writes the CA's PEM for a registries config).
//
// Usage:
//
//	reg := registry.Start(t, registry.Options{Referrers: true})
//	ref := reg.Ref("ebpf/xdp", "v1")       // "127.0.0.1:PORT/ebpf/xdp:v1"
//	repo := reg.Repository("ebpf/xdp")     // "127.0.0.1:PORT/ebpf/xdp"
//	reg.TamperBlob(t, layerDigest, evil)   // serve wrong bytes for a blob
//	n := reg.BlobGets(layerDigest)         // downloads so far
//	reg.Stop()                             // registry outage
//
//	dist := registry.StartDistribution(t) // same API, Debian docker-registry
package registry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// Options configure the in-process registry.
type Options struct {
	// Referrers enables the OCI 1.1 referrers API.
	Referrers bool
	// Username and Password, when set, make every request need HTTP basic
	// auth with them (401 with a Basic challenge otherwise).
	Username, Password string
	// TLS serves HTTPS with a certificate for 127.0.0.1 (and Addr's host)
	// signed by a CA made for this registry alone (Registry.CAFile),
	// instead of plain HTTP.
	TLS bool
	// Addr is the address to listen on, "HOST:0" for a free port on HOST;
	// empty means 127.0.0.1. A suite whose pods pull from the registry
	// gives the node's address.
	Addr string
}

// Registry is a running registry on 127.0.0.1.
type Registry struct {
	// Host is 127.0.0.1:PORT, the registry part of references.
	Host string

	stop     func()
	stopOnce sync.Once
	blobs    *memBlobs // in-process only
	storage  string    // docker-registry only: filesystem root
	caPEM    []byte    // Options.TLS only: the CA of the server's certificate
}

// Start runs an in-process registry until the test ends.
func Start(tb testing.TB, opts Options) *Registry {
	tb.Helper()
	blobs := &memBlobs{data: map[string][]byte{}, gets: map[string]int{}}
	handler := ggcrregistry.New(
		ggcrregistry.WithBlobHandler(blobs),
		ggcrregistry.WithReferrersSupport(opts.Referrers),
		ggcrregistry.Logger(log.New(io.Discard, "", 0)),
	)
	if opts.Username != "" || opts.Password != "" {
		handler = basicAuth(handler, opts.Username, opts.Password)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshakes a test makes fail
	if opts.Addr != "" {
		l, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			tb.Fatalf("listen on %s: %v", opts.Addr, err)
		}
		_ = srv.Listener.Close()
		srv.Listener = l
	}
	r := &Registry{blobs: blobs}
	if opts.TLS {
		// httptest's own certificate is the same for every server and
		// names loopback only: make a CA for this registry, so a CA
		// bundle that trusts one registry trusts no other.
		host, _, _ := net.SplitHostPort(srv.Listener.Addr().String())
		cert, caPEM, err := serverCertificate(host)
		if err != nil {
			tb.Fatalf("make the registry's certificate: %v", err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		r.caPEM = caPEM
	} else {
		srv.Start()
	}
	r.Host = strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
	r.stop = func() {
		srv.CloseClientConnections()
		srv.Close()
	}
	tb.Cleanup(r.Stop)
	return r
}

// StartDistribution runs /usr/bin/docker-registry (Debian package
// docker-registry) until the test ends. It skips, or fails under CI=true,
// when the binary is missing.
func StartDistribution(tb testing.TB) *Registry {
	tb.Helper()
	bin := privileged.RequireCommand(tb, "docker-registry")
	r, err := LaunchDistribution(bin, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Stop)
	return r
}

// LaunchDistribution runs the docker-registry binary bin on a free loopback
// port with its storage under dir, and waits until it answers. The caller
// stops it with Stop; for a TestMain, where StartDistribution has no
// testing.TB to clean up with.
func LaunchDistribution(bin, dir string) (*Registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create registry dir: %w", err)
	}
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("write registry config: %w", err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", configPath)
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start docker-registry: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r := &Registry{Host: addr, storage: filepath.Join(dir, "data")}
	r.stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case <-done:
			return nil, fmt.Errorf("docker-registry exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("docker-registry not ready on %s after 10s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Repository returns Host/path.
func (r *Registry) Repository(path string) string { return r.Host + "/" + path }

// Ref returns Host/path:tag, or Host/path@digest when tagOrDigest is a digest.
func (r *Registry) Ref(path, tagOrDigest string) string {
	if strings.Contains(tagOrDigest, ":") {
		return r.Repository(path) + "@" + tagOrDigest
	}
	return r.Repository(path) + ":" + tagOrDigest
}

// Stop stops the registry now (an outage); later calls do nothing.
func (r *Registry) Stop() { r.stopOnce.Do(r.stop) }

// TamperBlob replaces the stored content of blob digest with data, without
// changing its digest, so readers get bytes that do not match.
func (r *Registry) TamperBlob(tb testing.TB, digest string, data []byte) {
	tb.Helper()
	if r.blobs != nil {
		r.blobs.mu.Lock()
		defer r.blobs.mu.Unlock()
		if _, ok := r.blobs.data[digest]; !ok {
			tb.Fatalf("tamper: registry has no blob %s", digest)
		}
		r.blobs.data[digest] = data
		return
	}
	algo, hex, _ := strings.Cut(digest, ":")
	if len(hex) < 2 {
		tb.Fatalf("tamper: bad digest %q", digest)
	}
	path := filepath.Join(r.storage, "docker", "registry", "v2", "blobs", algo, hex[:2], hex, "data")
	if _, err := os.Stat(path); err != nil {
		tb.Fatalf("tamper: %v", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("tamper: %v", err)
	}
}

// BlobGets returns how many times blob digest was downloaded (in-process
// registry only; always 0 for docker-registry).
func (r *Registry) BlobGets(digest string) int {
	if r.blobs == nil {
		return 0
	}
	r.blobs.mu.Lock()
	defer r.blobs.mu.Unlock()
	return r.blobs.gets[digest]
}

func basicAuth(next http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="bpfleet-test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CAFile writes the PEM of the CA that signed the registry's certificate
// (Options.TLS) and returns its path.
func (r *Registry) CAFile(tb testing.TB) string {
	tb.Helper()
	if r.caPEM == nil {
		tb.Fatal("CAFile: the registry was not started with Options.TLS")
	}
	path := filepath.Join(tb.TempDir(), "ca.crt")
	if err := os.WriteFile(path, r.caPEM, 0o644); err != nil {
		tb.Fatalf("write CA: %v", err)
	}
	return path
}

// DockerConfig writes a docker config.json holding the credentials of
// Options.Username/Password for this registry and returns its path.
func (r *Registry) DockerConfig(tb testing.TB, user, password string) string {
	tb.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	path := filepath.Join(tb.TempDir(), "config.json")
	config := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, r.Host, auth)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		tb.Fatalf("write docker config: %v", err)
	}
	return path
}

// memBlobs is an in-memory blob store that, unlike the stock one, lets tests
// tamper with content and count downloads.
type memBlobs struct {
	mu   sync.Mutex
	data map[string][]byte
	gets map[string]int
}

func (m *memBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[h.String()]
	if !ok {
		return 0, ggcrregistry.ErrNotFound
	}
	return int64(len(b)), nil
}

func (m *memBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[h.String()]
	if !ok {
		return nil, ggcrregistry.ErrNotFound
	}
	m.gets[h.String()]++
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memBlobs) Put(_ context.Context, _ string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[h.String()] = b
	return nil
}

func (m *memBlobs) Delete(_ context.Context, _ string, h v1.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[h.String()]; !ok {
		return ggcrregistry.ErrNotFound
	}
	delete(m.data, h.String())
	return nil
}

// serverCertificate makes a CA and a serving certificate it signs for
// 127.0.0.1 and host, and returns the certificate and the CA's PEM.
func serverCertificate(host string) (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bpfleet test registry CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		ips = append(ips, ip)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "bpfleet test registry"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  ips,
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}
