package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// idleWindow is how long the idle agent is watched: two resyncs of the
// agent process started by startAgentProcess (every 5 s).
const idleWindow = 10 * time.Second

// BenchmarkIdleAgentProcess measures a real agent process at steady state
// with two programs (the XDP filter and an exec tracepoint): CPU per minute,
// resident memory, and BpfNodeState writes, which must be 0 with the stats
// refresh off.
func BenchmarkIdleAgentProcess(b *testing.B) {
	e := requireBenchEnv(b)
	ctx := context.Background()
	n, _ := filterNode(b, e, "bench-idle-filter")
	trace, err := e.ExecTraceProgram("bench-idle-trace")
	if err != nil {
		b.Fatal(err)
	}
	apply(b, e, trace)
	if _, err := e.WaitReady(ctx, trace.Name, int32(len(e.Nodes)), time.Minute); err != nil {
		b.Fatal(err)
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
		cpu0 := processCPU(b, agent.cmd.Process.Pid)
		time.Sleep(idleWindow)
		used := processCPU(b, agent.cmd.Process.Pid) - cpu0
		after := nodeState(b, e, n.Name)
		if after.ResourceVersion != before.ResourceVersion {
			writes++
		}
		for _, p := range []string{"bench-idle-filter", trace.Name} {
			if en := entry(after, p); en == nil || en.State != v1.PhaseAttached {
				b.Fatalf("%s on %s: %+v, want Attached", p, n.Name, en)
			}
		}
		cpuPerMin = append(cpuPerMin, float64(used.Milliseconds())*float64(time.Minute)/float64(idleWindow))
		rss = append(rss, float64(processRSSKiB(b, agent.cmd.Process.Pid))/1024)
	}
	if writes != 0 {
		b.Errorf("BpfNodeState written in %d idle windows of %s", writes, idleWindow)
	}
	b.ReportMetric(median(cpuPerMin), "idle-cpu-ms/min")
	b.ReportMetric(median(cpuPerMin)/float64(time.Minute.Milliseconds())*100, "idle-%core")
	b.ReportMetric(median(rss), "rss-MiB")
	b.ReportMetric(float64(writes), "idle-status-writes")
}

// processCPU is the user+system CPU time of process pid, from
// /proc/pid/stat (clock ticks of 10 ms).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("parse /proc/%d/stat: %v", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// processRSSKiB is VmRSS of process pid.
func processRSSKiB(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("parse VmRSS %q: %v", rest, err)
			}
			return kib
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
