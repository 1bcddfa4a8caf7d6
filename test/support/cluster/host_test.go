package cluster

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLockHost: a second cluster waits for the first one's lock, says so,
// gives up when its context ends, and gets the lock once the first stops.
func TestLockHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.lock")
	first, err := lockHost(context.Background(), path, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if second, err := lockHost(ctx, path, &out); !errors.Is(err, context.DeadlineExceeded) {
		second.Close()
		t.Fatalf("second lock while the first is held: %v, want it to wait until its context ends", err)
	}
	if !strings.Contains(out.String(), "waiting for it to stop") {
		t.Errorf("the waiting cluster said %q", out.String())
	}
	released := make(chan error, 1)
	go func() {
		f, err := lockHost(context.Background(), path, &bytes.Buffer{})
		if err == nil {
			f.Close()
		}
		released <- err
	}()
	time.Sleep(100 * time.Millisecond)
	first.Close()
	select {
	case err := <-released:
		if err != nil {
			t.Fatalf("lock after the first stopped: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second cluster still waits after the first stopped")
	}
}
