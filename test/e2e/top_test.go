package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/kubectl-bpf/plugin"
	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestTopReadsAgentStats: agents with run-time statistics on the real
// kernel run the filter while traffic flows through it; kubectl bpf top
// --once, reading only the API server, reports the filter running, with
// rates over the agents' sampling times (status.statsAt) that agree with
// bpftool reading the kernel over the same traffic.
func TestTopReadsAgentStats(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	p, err := e.FilterProgram("e2e-top")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, e, p)
	var n *localenv.Node
	selected := 0
	for _, node := range e.Nodes {
		if node.Labels[localenv.FilterLabel] == "enabled" {
			selected++
			if n == nil {
				n = node
			}
		}
	}
	if _, err := e.WaitReady(ctx, p.Name, int32(selected), time.Minute); err != nil {
		t.Fatal(err)
	}

	trafficCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // steady traffic while top samples
		defer wg.Done()
		for trafficCtx.Err() == nil {
			_, _ = e.SendTraffic(trafficCtx, n, 20)
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	var id uint32
	waitNodes(t, e, "statistics in the filter's status", func(s v1.BpfNodeState) bool {
		if s.Name != n.Name {
			return true
		}
		en := entry(s, p.Name)
		if en == nil || en.RunCount == 0 || s.Status.StatsAt == nil {
			return false
		}
		id = en.ID
		return true
	})

	bpftool := privileged.RequireCommand(t, "bpftool")
	bt0, bt0At := bpftoolShow(t, bpftool, id), time.Now()

	var out, errOut bytes.Buffer
	cmd := plugin.NewCommandWithClient(genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}, e.Client)
	// The agents sample every 2 s (localenv): an interval over two samples.
	cmd.SetArgs([]string{"top", "--once", "--interval", "5s", "--node", n.Name, "-o", "json"})
	if err := cmd.ExecuteContext(ctx); err != nil {
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
	if !r.Sampled || r.ID != id || r.BpfProgram != p.Name || r.RunsPerSec <= 0 || r.NsPerRun <= 0 || r.CPUPercent <= 0 || r.CPUPercent > 100 {
		t.Errorf("row %+v", r)
	}

	// bpftool, reading the kernel directly over the same traffic, must
	// tell the same story: runs/s within 4×, ns/run within 10× (an XDP
	// run's cost varies several-fold after an idle moment, and the two
	// windows differ).
	bt1 := bpftoolShow(t, bpftool, id)
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

// bpftoolProg is what TestTopReadsAgentStats reads of `bpftool -j prog show`.
type bpftoolProg struct {
	RunTimeNs uint64 `json:"run_time_ns"`
	RunCnt    uint64 `json:"run_cnt"`
}

func bpftoolShow(t *testing.T, bpftool string, id uint32) bpftoolProg {
	t.Helper()
	out, err := exec.Command(bpftool, "-j", "prog", "show", "id", strconv.FormatUint(uint64(id), 10)).Output()
	if err != nil {
		t.Fatalf("bpftool prog show id %d: %v", id, err)
	}
	var p bpftoolProg
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("decode bpftool output %s: %v", out, err)
	}
	return p
}
