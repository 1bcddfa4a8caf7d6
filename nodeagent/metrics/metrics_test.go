package metrics_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/metrics"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// pinRoot returns a fresh directory under /sys/fs/bpf, removed at the end.
func pinRoot(t *testing.T) string {
	t.Helper()
	privileged.RequireBPFFS(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	dir := "/sys/fs/bpf/bpfleet-test-" + hex.EncodeToString(b)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func pinMap(t *testing.T, dir, name string, spec *ebpf.MapSpec) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(spec)
	if err != nil {
		t.Fatalf("create map %s: %v", name, err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Pin(filepath.Join(dir, name)); err != nil {
		t.Fatalf("pin map %s: %v", name, err)
	}
	return m
}

func TestReadMap(t *testing.T) {
	dir := pinRoot(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}

	perCPU := pinMap(t, dir, "percpu", &ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 2})
	vals := make([][2]uint64, cpus)
	for i := range vals {
		vals[i] = [2]uint64{uint64(i + 1), 100}
	}
	if err := perCPU.Put(uint32(1), vals); err != nil {
		t.Fatal(err)
	}
	hash := pinMap(t, dir, "hash", &ebpf.MapSpec{Type: ebpf.Hash, KeySize: 2, ValueSize: 8, MaxEntries: 4})
	if err := hash.Put([2]byte{0xab, 0xcd}, uint64(42)); err != nil {
		t.Fatal(err)
	}
	pinMap(t, dir, "odd", &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 5, MaxEntries: 1})

	tests := []struct {
		name    string
		want    map[string][]uint64 // by key
		wantErr bool
	}{
		{name: "percpu", want: map[string][]uint64{
			"0": {0, 0},
			"1": {uint64(cpus * (cpus + 1) / 2), uint64(100 * cpus)},
		}},
		{name: "hash", want: map[string][]uint64{"abcd": {42}}},
		{name: "odd", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metrics.ReadMap(filepath.Join(dir, tt.name))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d: %+v", len(got), len(tt.want), got)
			}
			for _, v := range got {
				w, ok := tt.want[v.Key]
				if !ok || len(w) != len(v.Fields) {
					t.Fatalf("unexpected key %+v", v)
				}
				for i := range w {
					if w[i] != v.Fields[i] {
						t.Errorf("key %s field %d = %d, want %d", v.Key, i, v.Fields[i], w[i])
					}
				}
			}
		})
	}
}

func TestRegisterPerNode(t *testing.T) {
	dir := pinRoot(t)
	m := pinMap(t, dir, "hits", &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err := m.Put(uint32(0), uint64(7)); err != nil {
		t.Fatal(err)
	}
	state := func(node string) []v1alpha1.ProgramState {
		return []v1alpha1.ProgramState{{
			BpfProgram: "p-" + node, UID: types.UID("uid-" + node), Program: "prog", AttachPoint: "xdp/eth0",
			Digest: "sha256:1", ID: 11, Tag: "t", Type: "xdp", State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached,
			RunCount: 3, RunTimeNs: 3000,
		}}
	}
	register := func(node string) *metrics.Agent {
		a := metrics.NewAgent(node)
		if err := a.Register(metrics.Source{
			Snapshot: func() []v1alpha1.ProgramState { return state(node) },
			MetricMaps: func(uid types.UID, digest string) map[string]string {
				return map[string]string{"hits": filepath.Join(dir, "hits")}
			},
		}, nil); err != nil {
			t.Fatal(err)
		}
		return a
	}
	agentA := register("node-a")
	agentB := register("node-b")
	unA, unB := agentA.Unregister, agentB.Unregister
	agentA.AddFailures(v1alpha1.ReasonPullFailed, 1)

	series := func() map[string]map[string]float64 { // family → node → value
		families, err := crmetrics.Registry.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		out := map[string]map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				node := label(m, "node")
				if node != "node-a" && node != "node-b" {
					continue
				}
				if out[f.GetName()] == nil {
					out[f.GetName()] = map[string]float64{}
				}
				out[f.GetName()][node] += value(m)
			}
		}
		return out
	}
	got := series()
	for _, want := range []struct {
		family string
		node   string
		value  float64
	}{
		{"bpfleet_program_run_count_total", "node-a", 3},
		{"bpfleet_program_run_count_total", "node-b", 3},
		{"bpfleet_program_run_time_seconds_total", "node-a", 3e-6},
		{"bpfleet_programs", "node-b", 1},
		{"bpfleet_program_info", "node-a", 1},
		{"bpfleet_map_value", "node-a", 7},
		{"bpfleet_map_value", "node-b", 7},
		{"bpfleet_agent_failures_total", "node-a", 1},
	} {
		if v := got[want.family][want.node]; v != want.value {
			t.Errorf("%s{node=%s} = %v, want %v", want.family, want.node, v, want.value)
		}
	}
	unA()
	got = series()
	if _, ok := got["bpfleet_program_info"]["node-a"]; ok {
		t.Errorf("node-a still exported after unregistering")
	}
	if _, ok := got["bpfleet_agent_failures_total"]["node-a"]; ok {
		t.Errorf("node-a's failures still exported after unregistering")
	}
	if got["bpfleet_program_info"]["node-b"] != 1 {
		t.Errorf("node-b lost with node-a")
	}
	unB()
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}
