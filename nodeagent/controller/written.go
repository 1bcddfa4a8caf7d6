package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// WrittenStatus remembers the agent's own last BpfNodeState status write.
// The agent is the only writer of its status, but its cache sees its writes
// late: a reconcile woken meanwhile (by the watch event of an earlier write,
// say) would compare against the older status and write the same status
// again. With WrittenStatus it compares against what the API server holds.
// Its methods are safe for concurrent use; the zero value is ready.
type WrittenStatus struct {
	mu       sync.Mutex
	uid      types.UID
	replaced map[string]bool // resourceVersions the agent's writes superseded
	last     *v1alpha1.BpfNodeState
}

// Wrote records that the object at resourceVersion before was replaced by
// written (the API server's answer to the status write).
func (w *WrittenStatus) Wrote(before string, written *v1alpha1.BpfNodeState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.uid != written.UID || w.replaced == nil {
		w.uid, w.replaced = written.UID, map[string]bool{}
	}
	w.replaced[before] = true
	w.last = written.DeepCopy()
}

// Freshen replaces cached, read from the cache, with the last written object
// when the cache still holds a version the agent's writes replaced. Once the
// cache shows anything else (caught up, or the object was recreated), it
// forgets and leaves cached as it is.
func (w *WrittenStatus) Freshen(cached *v1alpha1.BpfNodeState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.last == nil:
	case cached.UID == w.uid && w.replaced[cached.ResourceVersion]:
		w.last.DeepCopyInto(cached)
	default:
		w.last, w.replaced = nil, nil
	}
}
