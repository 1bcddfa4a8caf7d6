package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bpfleet/bpfleet/nodeagent/metrics"
)

func TestSetUnmanaged(t *testing.T) {
	unregister := metrics.Register("node-u", metrics.Source{})
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
		metrics.SetUnmanaged("node-u", s.byType)
		for typ, want := range s.want {
			if got := testutil.ToFloat64(metrics.Unmanaged.WithLabelValues("node-u", typ)); got != want {
				t.Errorf("%s: bpfleet_unmanaged_programs{type=%s} = %v, want %v", s.name, typ, got, want)
			}
		}
	}
	unregister()
	if n := testutil.CollectAndCount(metrics.Unmanaged); n != 0 {
		t.Errorf("%d series left after unregistering", n)
	}
}
