package scale_test

import (
	"context"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// writeThrough is an EXPERIMENT, off unless -scale.writethrough: it wraps an
// agent's cached client so that, after the agent updated its BpfNodeState
// status, reading the BpfNodeState returns what was written until the cache
// has caught up (its resourceVersion is no longer one the agent replaced).
// It shows what the agent would gain by not writing from a cache that lags
// its own writes (409 conflicts, retried with backoff, under load); the
// default run measures the agent as it is.
type writeThrough struct {
	client.Client

	mu sync.Mutex
	// last is the object the last successful status update returned.
	last *v1alpha1.BpfNodeState
	// replaced are resourceVersions the agent's own writes superseded.
	replaced map[string]bool
}

func newWriteThrough(c client.Client) *writeThrough {
	return &writeThrough{Client: c, replaced: map[string]bool{}}
}

// Get reads through the cache, and answers with the last written
// BpfNodeState when the cache still holds a version the agent replaced.
func (w *writeThrough) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := w.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	ns, ok := obj.(*v1alpha1.BpfNodeState)
	if !ok {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.last == nil || w.last.Name != ns.Name:
	case w.replaced[ns.ResourceVersion]:
		w.last.DeepCopyInto(ns)
	default:
		// The cache caught up (or another writer moved on): trust it.
		w.last, w.replaced = nil, map[string]bool{}
	}
	return nil
}

// Status returns a writer that remembers successful BpfNodeState updates.
func (w *writeThrough) Status() client.SubResourceWriter {
	return &writeThroughStatus{SubResourceWriter: w.Client.Status(), w: w}
}

type writeThroughStatus struct {
	client.SubResourceWriter
	w *writeThrough
}

func (s *writeThroughStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	from := obj.GetResourceVersion()
	if err := s.SubResourceWriter.Update(ctx, obj, opts...); err != nil {
		return err
	}
	if ns, ok := obj.(*v1alpha1.BpfNodeState); ok {
		s.w.mu.Lock()
		s.w.replaced[from] = true
		s.w.last = ns.DeepCopy()
		s.w.mu.Unlock()
	}
	return nil
}
