package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// errCachesNotSynced: the agent's informers have not listed their objects yet.
var errCachesNotSynced = errors.New("informer caches not synced")

// listening passes once something accepts TCP connections on addr, as a
// scraper or `kubectl bpf events` would dial it: ":9090" means this host.
// A DaemonSet pod is ready only when its servers are, so a rollout or a
// scraper never meets a refused connection from a pod marked ready.
func listening(addr string) healthz.Checker {
	return func(*http.Request) error {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("parse address %q: %w", addr, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), time.Second)
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		return c.Close()
	}
}

// synced passes once every informer the agent reads from has listed.
func synced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 200*time.Millisecond)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errCachesNotSynced
		}
		return nil
	}
}
