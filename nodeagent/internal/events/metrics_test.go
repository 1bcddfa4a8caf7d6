package events

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsPerAgent: two agents in one process register their event
// counters on one registry, each under its node label, and count apart;
// one registering twice is refused; unregistered, its series are gone.
func TestMetricsPerAgent(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := NewMetrics(), NewMetrics()
	if err := a.Register("node-a", reg); err != nil {
		t.Fatal(err)
	}
	if err := b.Register("node-b", reg); err != nil {
		t.Fatal(err)
	}
	if err := NewMetrics().Register("node-a", reg); err == nil {
		t.Error("a second set of counters for node-a was registered")
	}
	sa, sb := &Streamer{Node: "node-a", Metrics: a}, &Streamer{Node: "node-b", Metrics: b}
	sa.metrics().dropped.WithLabelValues("p", "out", "stdout").Add(2)
	sb.metrics().dropped.WithLabelValues("p", "out", "stdout").Inc()

	want := func(n int) {
		t.Helper()
		if got, err := testutil.GatherAndCount(reg, "bpfleet_events_dropped_total"); err != nil || got != n {
			t.Fatalf("%d dropped series (%v), want %d", got, err, n)
		}
	}
	want(2)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bpfleet_events_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var node string
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" {
					node = l.GetValue()
				}
			}
			if wantN := map[string]float64{"node-a": 2, "node-b": 1}[node]; m.GetCounter().GetValue() != wantN {
				t.Errorf("node %q counted %v, want %v", node, m.GetCounter().GetValue(), wantN)
			}
		}
	}
	a.Unregister()
	want(1)
}
