package faults

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Mode is how a Proxy answers.
type Mode int32

// Proxy modes.
const (
	// Pass forwards every request to the registry.
	Pass Mode = iota
	// Fail500 answers every request with 500 Internal Server Error.
	Fail500
	// Drop closes every connection without an answer, like a registry
	// that went away mid-request.
	Drop
	// Slow holds every request for SlowDelay before forwarding it, like an
	// overloaded registry: clients with a shorter timeout give up.
	Slow
)

// SlowDelay is how long Slow holds each request.
const SlowDelay = 4 * time.Second

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Fail500:
		return "500"
	case Drop:
		return "drop"
	case Slow:
		return "slow"
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// Proxy is an HTTP front for an OCI registry that fails on demand. Bundles
// referenced through Host reach the registry only through it.
type Proxy struct {
	// Host is 127.0.0.1:PORT.
	Host string

	mode   atomic.Int32
	others atomic.Bool
	failed atomic.Int64
	srv    *http.Server
}

// NewProxy serves a proxy for the registry at upstream (host:port) on a free
// loopback port.
func NewProxy(upstream string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	p := &Proxy{Host: l.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := Mode(p.mode.Load())
		if mode != Pass && p.others.Load() && fromThisProcess(r.RemoteAddr) {
			mode = Pass
		}
		switch mode {
		case Fail500:
			p.failed.Add(1)
			http.Error(w, "injected fault", http.StatusInternalServerError)
			return
		case Drop:
			p.failed.Add(1)
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case Slow:
			p.failed.Add(1)
			select {
			case <-time.After(SlowDelay):
			case <-r.Context().Done():
				return // the client gave up
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// SetMode switches how the proxy answers from now on.
func (p *Proxy) SetMode(m Mode) { p.mode.Store(int32(m)) }

// OnlyOthers, when set, makes faults hit only clients in other processes
// (an agent run as bpfleet-agent) while this process (the in-process
// operator) passes: the operator can resolve and verify a release the
// agent then fails to pull.
func (p *Proxy) OnlyOthers(on bool) { p.others.Store(on) }

// Failed counts the requests answered with a fault (or held back, in Slow).
func (p *Proxy) Failed() int64 { return p.failed.Load() }

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

// fromThisProcess tells whether the TCP connection from remote (a loopback
// client address) belongs to this process: the socket's inode, found in
// /proc/net/tcp by its local port, is among this process's descriptors.
func fromThisProcess(remote string) bool {
	_, portStr, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return false
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	suffix := fmt.Sprintf(":%04X", port)
	inode := ""
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], suffix) && strings.HasPrefix(f[1], "0100007F") {
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return false
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && target == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}
