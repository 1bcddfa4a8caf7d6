package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles"
)

// gcStep is one GC of a test: whether its keep list names the bundle, how
// long to wait before it, and how many bundles it must remove.
type gcStep struct {
	keepIt  bool
	wait    time.Duration
	removed int
}

// TestGCKeepsUnusedForAWhile: a bundle the keep list stops naming stays for
// KeepUnused from the first GC that did not name it, comes back into use
// with no clock left over, and goes at the first GC after its time.
func TestGCKeepsUnusedForAWhile(t *testing.T) {
	const grace = time.Second
	tests := []struct {
		name   string
		steps  []gcStep
		cached bool
	}{
		{name: "removed after its time", steps: []gcStep{{false, 0, 0}, {false, grace / 3, 0}, {false, grace, 1}}, cached: false},
		{name: "used again restarts the clock", steps: []gcStep{{false, 0, 0}, {false, grace * 2 / 3, 0}, {true, 0, 0}, {false, grace / 2, 0}, {false, grace / 3, 0}}, cached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			ctx := context.Background()
			if _, err := f.cache.Get(ctx, f.repo, f.digest); err != nil {
				t.Fatal(err)
			}
			f.cache.KeepUnused = grace
			for i, s := range tt.steps {
				time.Sleep(s.wait)
				var keep []string
				if s.keepIt {
					keep = []string{f.digest}
				}
				if removed, err := f.cache.GC(keep); err != nil || removed != s.removed {
					t.Fatalf("GC %d = %d, %v; want %d removed", i, removed, err, s.removed)
				}
			}
			_, err := f.cache.Lookup(ctx, f.digest)
			if cached := err == nil; cached != tt.cached {
				t.Errorf("bundle cached after the GCs: %v (%v), want %v", cached, err, tt.cached)
			}
			if !tt.cached && !errors.Is(err, bundles.ErrNotFound) {
				t.Errorf("Lookup of the collected bundle: %v, want ErrNotFound", err)
			}
		})
	}
}
