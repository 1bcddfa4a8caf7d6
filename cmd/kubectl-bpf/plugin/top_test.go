package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/kubectl-bpf/plugin"
)

// topStats is one program's counters in one agent write.
type topStats struct {
	id             uint32
	program, point string
	runs, ns       uint64
}

// writeStats writes node's status as an agent with --stats --stats-interval
// does: the programs' counters and when they were read.
func writeStats(t *testing.T, node string, at time.Time, stats ...topStats) {
	t.Helper()
	ctx := context.Background()
	ns := &v1.BpfNodeState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, ns); err != nil {
		ns = &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node}}
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	}
	ns.Status.Programs = nil
	for _, s := range stats {
		ps := v1.ProgramState{
			BpfProgram: "top-" + s.program, UID: "uid-top", Program: s.program, AttachPoint: s.point, State: v1.PhaseAttached,
			ID: s.id, RunCount: s.runs, RunTimeNs: s.ns,
		}
		if s.runs > 0 {
			ps.NsPerRun = s.ns / s.runs
		}
		ns.Status.Programs = append(ns.Status.Programs, ps)
	}
	statsAt := metav1.NewMicroTime(at)
	ns.Status.StatsAt = &statsAt
	if err := env.Client.Status().Update(ctx, ns); err != nil {
		t.Fatalf("write %s status: %v", node, err)
	}
}

// runTop runs kubectl bpf top with args; between its two samples, next
// writes the agents' next statistics.
func runTop(t *testing.T, next func(), args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	sleeps := 0
	cmd := plugin.NewCommandWithSleep(genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}, func(_ context.Context, d time.Duration) error {
		if d != 3*time.Second {
			t.Errorf("waited %s between samples, want --interval 3s", d)
		}
		sleeps++
		next()
		return nil
	})
	cmd.SetArgs(append([]string{"--kubeconfig", env.Kubeconfig, "top", "--once", "--interval", "3s"}, args...))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("kubectl bpf top: %v\n%s", err, errOut.String())
	}
	if sleeps != 1 {
		t.Errorf("--once slept %d times, want 1", sleeps)
	}
	return out.String()
}

// TestTopOnce writes two statistics snapshots per node into real
// BpfNodeState statuses, 2s apart by the agents' clocks, and checks the
// rates kubectl bpf top --once computes from them and its table.
func TestTopOnce(t *testing.T) {
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	first := func() {
		// A filter on two interfaces (one kernel program), a light tracer,
		// and on another node a program whose agent writes nothing new.
		writeStats(t, "top-node-a", t0,
			topStats{id: 101, program: "xdp_filter", point: "xdp/eth0", runs: 1000, ns: 1_000_000},
			topStats{id: 101, program: "xdp_filter", point: "xdp/eth1", runs: 1000, ns: 1_000_000},
			topStats{id: 102, program: "tp_exec", point: "tracepoint/sched/sched_process_exec", runs: 10, ns: 100})
		writeStats(t, "top-node-b", t0,
			topStats{id: 201, program: "xdp_filter", point: "xdp/eth0", runs: 7, ns: 700})
	}
	second := func() {
		writeStats(t, "top-node-a", t0.Add(2*time.Second),
			topStats{id: 101, program: "xdp_filter", point: "xdp/eth0", runs: 3000, ns: 5_000_000},
			topStats{id: 101, program: "xdp_filter", point: "xdp/eth1", runs: 3000, ns: 5_000_000},
			topStats{id: 102, program: "tp_exec", point: "tracepoint/sched/sched_process_exec", runs: 20, ns: 1_000_100})
	}
	first()
	out := runTop(t, second)
	t.Logf("kubectl bpf top --once:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"NODE BPFPROGRAM PROGRAM ATTACH POINT ID RUNS/S NS/RUN CPU%",
		// 2000 runs, 4 ms in 2 s: 1000 runs/s, 2000 ns/run, 0.2% of a core.
		"top-node-a top-xdp_filter xdp_filter xdp/eth0,xdp/eth1 101 1000.0 2000 0.20",
		// 10 runs, 1 ms in 2 s: 5 runs/s, 100000 ns/run, 0.05%.
		"top-node-a top-tp_exec tp_exec tracepoint/sched/sched_process_exec 102 5.0 100000 0.05",
		// No newer statistics from node b: unknown, last.
		"top-node-b top-xdp_filter xdp_filter xdp/eth0 201 - - -",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if got := squeeze(lines[i]); got != w {
			t.Errorf("line %d = %q, want %q", i, got, w)
		}
	}

	// The same through -o json, for scripts.
	first()
	var rows []plugin.TopRow
	if err := json.Unmarshal([]byte(runTop(t, second, "--node", "top-node-a", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ID != 101 || rows[0].RunsPerSec != 1000 || rows[0].NsPerRun != 2000 ||
		rows[0].CPUPercent < 0.1999 || rows[0].CPUPercent > 0.2001 || !rows[0].Sampled || rows[1].ID != 102 {
		t.Errorf("json rows %+v", rows)
	}
}
