package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/procstat"
)

// idleWindow is how long the idle agent is watched: two resyncs of the
// agent process started by startAgentProcess (every 5 s).
const idleWindow = 10 * time.Second

// BenchmarkIdleAgentProcess measures a real agent process at steady state
// with ten programs (the XDP filter and nine exec tracepoints): CPU per
// minute, resident memory, and BpfNodeState writes, which must be 0 with the
// stats refresh off.
func BenchmarkIdleAgentProcess(b *testing.B) {
	e := requireBenchEnv(b)
	ctx := context.Background()
	n, _ := filterNode(b, e, "bench-idle-filter")
	names := []string{"bench-idle-filter"}
	for i := range 9 {
		trace, err := e.ExecTraceProgram(fmt.Sprintf("bench-idle-trace-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		trace.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": n.Name}}
		apply(b, e, trace)
		names = append(names, trace.Name)
	}
	for _, name := range names[1:] {
		if _, err := e.WaitReady(ctx, name, 1, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.StopAgent(n); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := e.StartAgent(n); err != nil {
			b.Error(err)
		}
	})
	agent := startAgentProcess(b, e, n)
	defer agent.kill(b)
	time.Sleep(3 * time.Second) // started, re-adopted, caches synced

	var cpuPerMin, rss []float64
	var writes int
	for b.Loop() {
		before := nodeState(b, e, n.Name)
		s0 := sampleProcess(b, agent.cmd.Process.Pid)
		time.Sleep(idleWindow)
		s1 := sampleProcess(b, agent.cmd.Process.Pid)
		used := s1.CPU - s0.CPU
		after := nodeState(b, e, n.Name)
		if after.ResourceVersion != before.ResourceVersion {
			writes++
		}
		for _, p := range names {
			if en := entry(after, p); en == nil || en.State != v1.PhaseAttached {
				b.Fatalf("%s on %s: %+v, want Attached", p, n.Name, en)
			}
		}
		cpuPerMin = append(cpuPerMin, float64(used.Milliseconds())*float64(time.Minute)/float64(idleWindow))
		rss = append(rss, float64(s1.RSSKiB)/1024)
	}
	if writes != 0 {
		b.Errorf("BpfNodeState written in %d idle windows of %s", writes, idleWindow)
	}
	b.ReportMetric(median(cpuPerMin), "idle-cpu-ms/min")
	b.ReportMetric(median(cpuPerMin)/float64(time.Minute.Milliseconds())*100, "idle-%core")
	b.ReportMetric(median(rss), "rss-MiB")
	b.ReportMetric(float64(writes), "idle-status-writes")
}

func sampleProcess(b *testing.B, pid int) procstat.Sample {
	b.Helper()
	s, err := procstat.Read(pid)
	if err != nil {
		b.Fatal(err)
	}
	return s
}
