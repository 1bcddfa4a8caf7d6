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
	"github.com/bpfleet/bpfleet/nodeagent/internal/reviewauth"
)

// Server streams a program's events to a caller who may get the
// BpfProgram: GET /events?bpfProgram=NAME[&namespace=NS][&pod=P][&since=D]
// over TLS, one JSON line per event, starting with the kept lines of the
// last D (see HistoryLength). A client that falls QueueLength lines behind
// gets the lines queued for it, then a last line with "error", "lost" (the
// lines it missed, also counted in bpfleet_events_dropped_total with reason
// slow-consumer) and "sent". kubectl bpf events reaches it through a
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
	// WriteTimeout disconnects a client that has not taken a line for
	// this long; zero means DefaultWriteTimeout.
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
	var since time.Duration
	if v := q.Get("since"); v != "" {
		if since, err = time.ParseDuration(v); err != nil || since < 0 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("since=%s: want a duration such as 30s or 5m", v))
			return
		}
	}
	sub := s.Streamer.Subscribe(name, q.Get("namespace"), q.Get("pod"), since)
	s.Log.Info("event stream opened", "user", user, "bpfProgram", name, "remote", req.RemoteAddr)
	w.Header().Set("Content-Type", "application/jsonl")
	w.WriteHeader(http.StatusOK)
	st := &stream{w: w, rc: http.NewResponseController(w), timeout: s.WriteTimeout}
	if st.timeout == 0 {
		st.timeout = DefaultWriteTimeout
	}
	for _, l := range sub.Replay {
		if !st.write(l) {
			s.Streamer.End(sub, nil)
			return
		}
	}
	if !st.flush() {
		s.Streamer.End(sub, nil)
		return
	}
	for {
		select {
		case <-ctx.Done():
			s.Streamer.End(sub, nil) // left on its own; counts what it lost if cut off
			return
		case l, ok := <-sub.Lines:
			if !ok {
				lost := 0
				for _, n := range s.Streamer.End(sub, nil) {
					lost += n
				}
				b := fmt.Appendf(nil, `{"schema":%q,"error":"cut off: this client fell %d events behind and lost %d; reconnect","lost":%d,"sent":%d}`+"\n",
					Schema, QueueLength, lost, lost, st.sent)
				_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
				_, _ = w.Write(b)
				_ = st.rc.Flush()
				s.Log.Info("event stream cut off: slow consumer", "user", user, "bpfProgram", name, "lost", lost, "sent", st.sent)
				return
			}
			ok = st.write(l)
			if ok && len(sub.Lines) == 0 {
				ok = st.flush()
			}
			if !ok {
				s.Streamer.End(sub, st.pending)
				return
			}
		}
	}
}

// DefaultWriteTimeout is how long a client may take no line before it is
// disconnected; a client that stalls for less gets what was queued, then
// the cut-off line saying how many it lost.
const DefaultWriteTimeout = time.Minute

// stream writes lines to one client, counting what it delivered (sent) and
// what is written but not yet flushed (pending, by output): a failed write
// or flush loses the pending lines.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	sent    int
	pending map[string]int
}

func (st *stream) write(l Line) bool {
	if st.pending == nil {
		st.pending = map[string]int{}
	}
	if len(st.pending) == 0 { // a new batch: one deadline until its flush
		_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	}
	st.pending[l.Output]++
	_, err := st.w.Write(l.Data)
	return err == nil
}

func (st *stream) flush() bool {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	if err := st.rc.Flush(); err != nil {
		return false
	}
	for o, n := range st.pending {
		st.sent += n
		delete(st.pending, o)
	}
	return true
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
