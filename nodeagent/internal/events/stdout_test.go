package events

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// blockedWriter is a log pipe nobody reads until release is closed: its
// first Write blocks, as a full pipe does.
type blockedWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once

	mu  sync.Mutex
	out bytes.Buffer
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

func (w *blockedWriter) lines() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Count(w.out.Bytes(), []byte("\n"))
}

// TestStdoutDropsWhenThePipeStalls: while Out blocks, the stdout sink holds
// StdoutQueue lines (plus the one being written) and drops the rest, each
// counted with reason "stdout"; publishing never waits on the pipe, and
// once it drains every line it kept reaches Out.
func TestStdoutDropsWhenThePipeStalls(t *testing.T) {
	const extra = 37
	out := &blockedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	s := &Streamer{Node: "node-a", Out: out}

	s.toStdout("p", Line{Output: "events", Data: []byte("line 0\n")})
	<-out.entered // the writer goroutine holds line 0 inside Write

	total := 1 + StdoutQueue + extra
	start := time.Now()
	for i := 1; i < total; i++ {
		s.toStdout("p", Line{Output: "events", Data: []byte(fmt.Sprintf("line %d\n", i))})
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("publishing %d lines to a stalled pipe took %v", total-1, took)
	}
	dropped := testutil.ToFloat64(s.metrics().dropped.WithLabelValues("p", "events", "stdout"))
	if dropped != extra {
		t.Errorf("dropped %v lines with reason stdout, want %d", dropped, extra)
	}

	close(out.release)
	kept := total - extra
	deadline := time.Now().Add(10 * time.Second)
	for out.lines() < kept && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := out.lines(); got != kept {
		t.Errorf("%d lines reached Out, want the %d kept", got, kept)
	}
}
