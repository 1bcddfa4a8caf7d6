package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bpfleet/bpfleet/nodeagent/metrics"
)

func TestSetUnmanaged(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := metrics.NewAgent("node-u")
	if err := a.Register(metrics.Source{}, reg); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		byType map[string]int32
		// want is the exported value per type after the step.
		want map[string]float64
	}{
		{"first inventory", map[string]int32{"cgroup_device": 12, "kprobe": 1}, map[string]float64{"cgroup_device": 12, "kprobe": 1}},
		{"a type disappears and drops to zero", map[string]int32{"cgroup_device": 12}, map[string]float64{"cgroup_device": 12, "kprobe": 0}},
		{"a new type comes", map[string]int32{"cgroup_device": 11, "xdp": 2}, map[string]float64{"cgroup_device": 11, "kprobe": 0, "xdp": 2}},
		{"nothing unmanaged", nil, map[string]float64{"cgroup_device": 0, "kprobe": 0, "xdp": 0}},
	}
	for _, s := range steps {
		a.SetUnmanaged(s.byType)
		got := unmanaged(t, reg)
		for typ, want := range s.want {
			if got := got[typ]; got != want {
				t.Errorf("%s: bpfleet_unmanaged_programs{type=%s} = %v, want %v", s.name, typ, got, want)
			}
		}
	}
	a.Unregister()
	if n := len(unmanaged(t, reg)); n != 0 {
		t.Errorf("%d series left after unregistering", n)
	}
}

// unmanaged is bpfleet_unmanaged_programs by type, as reg exports it (each
// series labelled node-u).
func unmanaged(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "bpfleet_unmanaged_programs" {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "node") != "node-u" {
				t.Errorf("series without node=node-u: %v", m.GetLabel())
			}
			out[label(m, "type")] = value(m)
		}
	}
	return out
}
