package events

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func podIdentity(ns, name string) identity {
	return identity{inPod: true, pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
}

func slowConsumerDrops(s *Streamer, program, output string) float64 {
	return testutil.ToFloat64(s.metrics().dropped.WithLabelValues(program, output, "slow-consumer"))
}

// TestSlowConsumer: a consumer that takes nothing keeps QueueLength lines,
// is cut off, and every later line for it is counted lost, in End's answer
// and in bpfleet_events_dropped_total{reason="slow-consumer"}; a consumer
// that keeps up, or leaves on its own, loses nothing; lines taken but not
// delivered count as lost.
func TestSlowConsumer(t *testing.T) {
	tests := []struct {
		name      string
		published int
		read      int // lines the consumer takes as they come
		unsent    int // of those, not delivered
		wantLost  int
	}{
		{"stalled", QueueLength + 5000, 0, 0, 5000},
		{"stalled, exactly full", QueueLength, 0, 0, 0},
		{"keeps up", QueueLength + 5000, QueueLength + 5000, 0, 0},
		{"write failed", 100, 10, 1, 1 + 90},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Streamer{Node: "n"}
			program := fmt.Sprintf("slow-%d", i)
			before := slowConsumerDrops(s, program, "out")
			sub := s.Subscribe(program, "", "", 0)
			other := s.Subscribe(program+"-other", "", "", 0) // another program's consumer
			read := 0
			for j := range tt.published {
				s.hub.publish(program, "out", identity{}, fmt.Appendf(nil, "line %d\n", j))
				if read < tt.read {
					if l := <-sub.Lines; !bytes.Equal(l.Data, fmt.Appendf(nil, "line %d\n", j)) || l.Output != "out" {
						t.Fatalf("got %q from %s, want line %d", l.Data, l.Output, j)
					}
					read++
				}
			}
			var unsent map[string]int
			if tt.unsent > 0 {
				unsent = map[string]int{"out": tt.unsent}
			}
			if tt.read == 0 && tt.published > QueueLength {
				queued := 0
				for range sub.Lines { // a cut-off consumer still gets what was queued
					queued++
				}
				if queued != QueueLength {
					t.Errorf("cut-off consumer got %d queued lines, want %d", queued, QueueLength)
				}
			}
			lost := s.End(sub, unsent)
			if lost["out"] != tt.wantLost {
				t.Errorf("End says %v lost, want %d", lost, tt.wantLost)
			}
			if got := slowConsumerDrops(s, program, "out") - before; got != float64(tt.wantLost) {
				t.Errorf("slow-consumer counter grew by %v, want %d", got, tt.wantLost)
			}
			s.hub.publish(program, "out", identity{}, []byte("after\n"))
			if got := slowConsumerDrops(s, program, "out") - before; got != float64(tt.wantLost) {
				t.Errorf("a line after End was counted: %v", got)
			}
			if lost := s.End(other, nil); lost != nil {
				t.Errorf("another program's consumer lost %v", lost)
			}
		})
	}
}

// TestSince: a new consumer gets the kept lines of the last D that match
// its namespace, oldest first, then the live ones; the history is bounded
// in lines and bytes.
func TestSince(t *testing.T) {
	s := &Streamer{Node: "n"}
	s.hub.publish("p", "out", podIdentity("a", "x"), []byte("old\n"))
	time.Sleep(300 * time.Millisecond)
	s.hub.publish("p", "out", podIdentity("a", "x"), []byte("new a\n"))
	s.hub.publish("p", "out", podIdentity("b", "y"), []byte("new b\n"))
	s.hub.publish("q", "out", podIdentity("a", "x"), []byte("other program\n"))
	for _, tt := range []struct {
		ns    string
		since time.Duration
		want  []string
	}{
		{"", 0, nil},
		{"", 200 * time.Millisecond, []string{"new a\n", "new b\n"}},
		{"a", 200 * time.Millisecond, []string{"new a\n"}},
		{"", time.Minute, []string{"old\n", "new a\n", "new b\n"}},
	} {
		sub := s.Subscribe("p", tt.ns, "", tt.since)
		var got []string
		for _, l := range sub.Replay {
			if string(l.Data) != "live\n" { // published by the cases before
				got = append(got, string(l.Data))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("-n %q --since %v replayed %q, want %q", tt.ns, tt.since, got, tt.want)
		}
		s.hub.publish("p", "out", identity{}, []byte("live\n"))
		if tt.ns == "" {
			if l := <-sub.Lines; string(l.Data) != "live\n" {
				t.Errorf("live line %q after the replay", l.Data)
			}
		}
		s.End(sub, nil)
	}

	var h history
	for i := range 3 * HistoryLength {
		h.add(time.Now(), "", "", Line{Data: fmt.Appendf(nil, "%d", i)})
	}
	all := h.since(time.Time{}, func(string, string) bool { return true })
	if len(all) != HistoryLength || string(all[0].Data) != fmt.Sprint(2*HistoryLength) || string(all[len(all)-1].Data) != fmt.Sprint(3*HistoryLength-1) {
		t.Errorf("history kept %d lines from %s, want the last %d", len(all), all[0].Data, HistoryLength)
	}
	big := bytes.Repeat([]byte("x"), HistoryBytes/4+1)
	for range 10 {
		h.add(time.Now(), "", "", Line{Data: big})
	}
	if h.bytes > HistoryBytes || h.n != 3 {
		t.Errorf("history holds %d lines of %d bytes, want 3 within %d", h.n, h.bytes, HistoryBytes)
	}
}

// TestKernelDrops: the growth of a program's pinned per-CPU drop counter,
// summed over CPUs, is added to bpfleet_events_dropped_total{reason="kernel"},
// and a counter made again (a reload) counts from zero.
func TestKernelDrops(t *testing.T) {
	privileged.RequireRoot(t)
	privileged.RequireBPFFS(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir, err := os.MkdirTemp("/sys/fs/bpf", "events-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	pin := filepath.Join(dir, "stats")
	if err := m.Pin(pin); err != nil {
		t.Fatal(err)
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	set := func(perCPU uint64) {
		vals := make([]uint64, cpus)
		for i := range vals {
			vals[i] = perCPU
		}
		if err := m.Put(uint32(2), vals); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(uint32(1), vals); err != nil { // another counter: not the drops
			t.Fatal(err)
		}
	}
	r := &reader{program: "kd", output: "out", drops: format.DropCounter{Map: "stats", Index: 2}}
	counters := NewMetrics()
	kernel := func() float64 { return testutil.ToFloat64(counters.dropped.WithLabelValues("kd", "out", "kernel")) }
	for _, step := range []struct {
		perCPU uint64
		want   float64
	}{{0, 0}, {5, 5 * float64(cpus)}, {7, 7 * float64(cpus)}, {1, 8 * float64(cpus)}} {
		set(step.perCPU)
		if err := r.countKernelDrops(counters, pin); err != nil {
			t.Fatal(err)
		}
		if got := kernel(); got != step.want {
			t.Errorf("counter at %d per CPU: metric %v, want %v", step.perCPU, got, step.want)
		}
	}
	r.drops.Index = 7
	if err := r.countKernelDrops(counters, pin); err == nil {
		t.Error("a drop counter index the map lacks gave no error")
	}
}
