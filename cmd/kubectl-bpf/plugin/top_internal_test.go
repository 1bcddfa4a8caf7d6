package plugin

import (
	"math"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

func TestTopRows(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	smp := func(at time.Time, runs, ns uint64) topSample {
		return topSample{bpfProgram: "f", program: "p", runCount: runs, runTimeNs: ns, at: at}
	}
	k := topKey{node: "n", id: 7}
	tests := []struct {
		name      string
		prev, cur topSample
		noPrev    bool
		// want are the expected rates; wantSampled false means unknown.
		wantSampled               bool
		wantRuns, wantNs, wantCPU float64
	}{
		{
			name: "2000 runs of 2µs in 2s: 1000/s, 0.2% of a core",
			prev: smp(t0, 1000, 1_000_000), cur: smp(t0.Add(2*time.Second), 3000, 5_000_000),
			wantSampled: true, wantRuns: 1000, wantNs: 2000, wantCPU: 0.2,
		},
		{
			name: "idle program: zero rates, known",
			prev: smp(t0, 5, 500), cur: smp(t0.Add(time.Second), 5, 500),
			wantSampled: true,
		},
		{
			name: "a whole core",
			prev: smp(t0, 0, 0), cur: smp(t0.Add(500*time.Millisecond), 5_000_000, 500_000_000),
			wantSampled: true, wantRuns: 10_000_000, wantNs: 100, wantCPU: 100,
		},
		{name: "no earlier sample", noPrev: true, cur: smp(t0, 5, 500)},
		{name: "no newer statistics", prev: smp(t0, 5, 500), cur: smp(t0, 5, 500)},
		{name: "counters went back (reloaded)", prev: smp(t0, 500, 5000), cur: smp(t0.Add(time.Second), 5, 50)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := map[topKey]topSample{k: tt.prev}
			if tt.noPrev {
				prev = nil
			}
			rows := topRows(prev, map[topKey]topSample{k: tt.cur})
			if len(rows) != 1 {
				t.Fatalf("%d rows", len(rows))
			}
			r := rows[0]
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }
			if r.Sampled != tt.wantSampled || !near(r.RunsPerSec, tt.wantRuns) || !near(r.NsPerRun, tt.wantNs) || !near(r.CPUPercent, tt.wantCPU) {
				t.Errorf("row %+v; want sampled %t, %v runs/s, %v ns/run, %v%% CPU", r, tt.wantSampled, tt.wantRuns, tt.wantNs, tt.wantCPU)
			}
		})
	}
}

func TestCollectSamples(t *testing.T) {
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	statsAt := metav1.NewMicroTime(now.Add(-3 * time.Second))
	states := []v1.BpfNodeState{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: v1.BpfNodeStateStatus{StatsAt: &statsAt, Programs: []v1.ProgramState{
			{BpfProgram: "f", Program: "p", AttachPoint: "xdp/eth1", ID: 7, State: v1.PhaseAttached, RunCount: 10, RunTimeNs: 100},
			{BpfProgram: "f", Program: "p", AttachPoint: "xdp/eth0", ID: 7, State: v1.PhaseAttached, RunCount: 10, RunTimeNs: 100},
			{BpfProgram: "f", Program: "q", ID: 0, State: v1.PhaseFailed},
			{BpfProgram: "g", Program: "r", ID: 9, State: v1.PhaseAttached},
		}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: v1.BpfNodeStateStatus{Programs: []v1.ProgramState{
			{BpfProgram: "f", Program: "p", ID: 7, State: v1.PhaseAttached},
		}}},
	}
	tests := []struct {
		name, program, node string
		want                map[topKey]time.Time
	}{
		{"all", "", "", map[topKey]time.Time{{"a", 7}: statsAt.Time, {"a", 9}: statsAt.Time, {"b", 7}: now}},
		{"one BpfProgram", "g", "", map[topKey]time.Time{{"a", 9}: statsAt.Time}},
		{"one node", "", "b", map[topKey]time.Time{{"b", 7}: now}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collectSamples(states, tt.program, tt.node, now)
			if len(got) != len(tt.want) {
				t.Fatalf("samples %+v, want keys %v", got, tt.want)
			}
			for k, at := range tt.want {
				if s, ok := got[k]; !ok || !s.at.Equal(at) {
					t.Errorf("sample %v = %+v, want at %v", k, s, at)
				}
			}
		})
	}
	if pts := collectSamples(states, "f", "a", now)[topKey{"a", 7}].attachPoints; len(pts) != 2 {
		t.Errorf("attach points of one program at two points: %v", pts)
	}
}

func TestShortSigner(t *testing.T) {
	tests := []struct{ signer, short, key string }{
		{"prod/release SHA256:abcdef0123456789…", "prod/release", "SHA256:abcdef0123456789…"},
		{"dev (unsigned, allowed by policy)", "dev (unsigned)", "unsigned"},
		{"local/dev", "local/dev", "-"},
		{"", "-", "-"},
	}
	for _, tt := range tests {
		if got := shortSigner(tt.signer); got != tt.short {
			t.Errorf("shortSigner(%q) = %q, want %q", tt.signer, got, tt.short)
		}
		if got := signerKey(tt.signer); got != tt.key {
			t.Errorf("signerKey(%q) = %q, want %q", tt.signer, got, tt.key)
		}
	}
}
