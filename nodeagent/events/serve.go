package events

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/reviewauth"
)

// Server streams a program's events to a caller who may get the
// BpfProgram: GET /events?bpfProgram=NAME[&namespace=NS][&pod=P] over TLS,
// one JSON line per event. kubectl bpf events reaches it through a
// port-forward with the user's own token; the agent reviews that token and
// the right with the API server, so the plugin is not what guards it.
type Server struct {
	// Addr is the listen address, e.g. :9093.
	Addr     string
	Streamer *Streamer
	Reviewer *reviewauth.Reviewer
	// Program returns the named BpfProgram, or an error.
	Program func(ctx context.Context, name string) (*v1alpha1.BpfProgram, error)
	Log     logr.Logger
	// WriteTimeout cuts off a client that has not taken a line for this
	// long; zero means 10 s.
	WriteTimeout time.Duration
}

// Start serves until ctx ends (a controller-runtime Runnable).
func (s *Server) Start(ctx context.Context) error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen for event streams: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/events", s.serveEvents)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve event streams: %w", err)
	}
	return nil
}

func (s *Server) serveEvents(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	q := req.URL.Query()
	name := q.Get("bpfProgram")
	if name == "" {
		httpError(w, http.StatusBadRequest, "name a BpfProgram: /events?bpfProgram=NAME")
		return
	}
	user, err := s.Reviewer.Allowed(ctx, reviewauth.BearerToken(req), nil, &authorizationv1.ResourceAttributes{
		Group: v1alpha1.GroupVersion.Group, Resource: "bpfprograms", Verb: "get", Name: name,
	})
	switch {
	case errors.Is(err, reviewauth.ErrUnauthenticated):
		httpError(w, http.StatusUnauthorized, "the agent needs your bearer token: "+err.Error())
		return
	case errors.Is(err, reviewauth.ErrForbidden):
		httpError(w, http.StatusForbidden, err.Error())
		return
	case err != nil:
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	p, err := s.Program(ctx, name)
	if err != nil {
		httpError(w, http.StatusNotFound, fmt.Sprintf("BpfProgram %s: %v", name, err))
		return
	}
	if p.Spec.Events == nil || !p.Spec.Events.Enabled {
		httpError(w, http.StatusConflict, fmt.Sprintf("BpfProgram %s does not ask for events (spec.events.enabled)", name))
		return
	}
	sub, cancel := s.Streamer.Subscribe(name, q.Get("namespace"), q.Get("pod"))
	defer cancel()
	s.Log.Info("event stream opened", "user", user, "bpfProgram", name, "remote", req.RemoteAddr)
	w.Header().Set("Content-Type", "application/jsonl")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	timeout := s.WriteTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	for {
		select {
		case <-ctx.Done():
			return
		case line, ok := <-sub.Lines:
			_ = rc.SetWriteDeadline(time.Now().Add(timeout))
			if !ok {
				msg := fmt.Sprintf(`{"schema":%q,"error":"cut off: this client fell %d events behind; reconnect"}`+"\n", Schema, QueueLength)
				_, _ = w.Write([]byte(msg))
				_ = rc.Flush()
				s.Log.Info("event stream cut off: slow consumer", "user", user, "bpfProgram", name)
				return
			}
			if _, err := w.Write(line); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b := []byte(`{"schema":"` + Schema + `","error":`)
	b = appendJSONString(b, []byte(msg))
	_, _ = w.Write(append(b, '}', '\n'))
}

// selfSigned is a fresh serving certificate: clients reach the agent
// through a port-forward and authenticate it by the tunnel, not by name.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "bpfleet-agent-events"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign serving certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
