package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/kubectl-bpf/plugin"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestTopReadsAgentStats runs an agent with run-time statistics on the real
// kernel, sends datagrams through its XDP filter, and checks that kubectl
// bpf top --once, reading only the API server, reports the filter running,
// with rates over the agent's sampling times (status.statsAt).
func TestTopReadsAgentStats(t *testing.T) {
	w := newWorld(t)
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t, func(o *controller.Options) {
		o.Stats = true
		o.StatsInterval = 300 * time.Millisecond
	})
	e := w.waitEntry(t, p, "attached", attachedAt(digest))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // steady traffic while top samples
		defer wg.Done()
		for ctx.Err() == nil {
			w.delivered(t, openPort, 20)
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	w.waitEntry(t, p, "statistics in status", func(s v1alpha1.ProgramState) bool { return s.RunCount > 0 })
	if ns := w.state(t); ns.Status.StatsAt == nil || time.Since(ns.Status.StatsAt.Time) > 5*time.Second {
		t.Errorf("statsAt = %v, want a recent read time", ns.Status.StatsAt)
	}

	bpftool := privileged.RequireCommand(t, "bpftool")
	bt0, bt0At := bpftoolShow(t, bpftool, e.ID), time.Now()

	var out, errOut bytes.Buffer
	cmd := plugin.NewCommandWithClient(genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}, env.Client)
	cmd.SetArgs([]string{"top", "--once", "--interval", "1s", "--node", w.node, "-o", "json"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("kubectl bpf top: %v\n%s", err, errOut.String())
	}
	var rows []plugin.TopRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("decode %s: %v", out.String(), err)
	}
	if len(rows) != 1 {
		t.Fatalf("rows %+v, want the one filter", rows)
	}
	r := rows[0]
	t.Logf("kubectl bpf top: %s %s at %s: %.0f runs/s, %.0f ns/run, %.4f%% of a core", r.Node, r.Program, r.AttachPoint, r.RunsPerSec, r.NsPerRun, r.CPUPercent)
	if !r.Sampled || r.ID != e.ID || r.BpfProgram != p.Name || r.RunsPerSec <= 0 || r.NsPerRun <= 0 || r.CPUPercent <= 0 || r.CPUPercent > 100 {
		t.Errorf("row %+v", r)
	}

	// bpftool, reading the kernel directly over the same traffic, must
	// tell the same story: runs/s within 4×, ns/run within 10× (a generic
	// XDP run costs 200 ns warm and several times that after an idle
	// moment or under the race detector, and the two windows differ).
	bt1 := bpftoolShow(t, bpftool, e.ID)
	if bt1.RunCnt <= bt0.RunCnt {
		t.Fatalf("bpftool run_cnt %d → %d: statistics off or no traffic", bt0.RunCnt, bt1.RunCnt)
	}
	btRate := float64(bt1.RunCnt-bt0.RunCnt) / time.Since(bt0At).Seconds()
	btNs := float64(bt1.RunTimeNs-bt0.RunTimeNs) / float64(bt1.RunCnt-bt0.RunCnt)
	t.Logf("bpftool prog show over the same traffic: %.0f runs/s, %.0f ns/run", btRate, btNs)
	within := func(a, b, factor float64) bool { return a <= b*factor && b <= a*factor }
	if !within(r.RunsPerSec, btRate, 4) || !within(r.NsPerRun, btNs, 10) {
		t.Errorf("kubectl bpf top says %.0f runs/s at %.0f ns/run, bpftool %.0f runs/s at %.0f ns/run: too far apart",
			r.RunsPerSec, r.NsPerRun, btRate, btNs)
	}
}
