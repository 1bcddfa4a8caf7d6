package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func requireBenchSuite(b *testing.B) *env {
	b.Helper()
	if suite == nil {
		privileged.SkipOrFail(b, "real node not running: %v", suiteErr)
	}
	return suite
}

// BenchmarkRealNodeBringUp reports what TestMain measured once: the cluster
// from empty state to a Ready node and the default ServiceAccount (binaries
// built and cached), and kubectl apply -k to every bpfleet pod Ready.
func BenchmarkRealNodeBringUp(b *testing.B) {
	e := requireBenchSuite(b)
	for b.Loop() {
	}
	b.ReportMetric(e.bringUp.Seconds(), "s-cluster-up")
	b.ReportMetric(e.killedHarnessUp.Seconds(), "s-cluster-up-first")
	b.ReportMetric(e.installReady.Seconds(), "s-apply-k-to-ready")
}

// BenchmarkRealNodeApplyToAttached: a BpfProgram with the packet-of-death
// filter applied with kubectl to Attached, reported by the agent pod,
// against bpftool loading and attaching the same object in the same run.
func BenchmarkRealNodeApplyToAttached(b *testing.B) {
	e := requireBenchSuite(b)
	bpftool := privileged.RequireCommand(b, "bpftool")
	obj := filepath.Join(repoDir, "bpf", "xdpfilter", xdpfilter.ObjectFile)
	var applied, manual []float64
	rounds := max(b.N, 5)
	for i := range rounds {
		f, took := e.newFilter(b, fmt.Sprintf("bench-apply-%d", i))
		applied = append(applied, float64(took.Microseconds())/1000)
		if err := e.client.Delete(context.Background(), &v1.BpfProgram{ObjectMeta: metaName(f.name)}); err != nil {
			b.Fatal(err)
		}
		// The same object by hand, on an interface of its own.
		v := netns.NewVeth(b, nil, "", netns.New(b), "")
		pin := filepath.Join("/sys/fs/bpf", netns.UniqueName("bench-rn-"))
		b.Cleanup(func() { _ = os.Remove(pin) })
		start := time.Now()
		runCmd(b, bpftool, "prog", "load", obj, pin, "type", "xdp")
		runCmd(b, bpftool, "net", "attach", "xdpdrv", "pinned", pin, "dev", v.A)
		manual = append(manual, float64(time.Since(start).Microseconds())/1000)
		runCmd(b, bpftool, "net", "detach", "xdpdrv", "dev", v.A)
	}
	ma, mm := median(applied), median(manual)
	b.ReportMetric(ma, "ms-apply-to-attached")
	b.ReportMetric(mm, "ms-bpftool-load-attach")
	b.ReportMetric(ma/mm, "bpfleet/bpftool")
}

// BenchmarkRealNodeAgentMemory: the agent pod's memory working set (its
// cgroup's usage less inactive file pages, as the kubelet computes it) with
// ten programs loaded: the filter and nine tracepoints.
func BenchmarkRealNodeAgentMemory(b *testing.B) {
	e := requireBenchSuite(b)
	e.newFilter(b, "bench-memory-filter")
	ref := e.pushBundle(b, e.kernelprogBundle(b), "realnode-hooks", "0.1.0")
	for i := range 9 {
		name := fmt.Sprintf("bench-memory-tp-%d", i)
		e.deleteProgram(b, name)
		e.apply(b, fmt.Sprintf("apiVersion: bpfleet.io/v1alpha1\nkind: BpfProgram\nmetadata: {name: %s}\nspec:\n  bundle: {image: %s}\n  programs:\n    - {name: tp_getppid, tracepoint: {group: syscalls, name: sys_enter_getppid}}\n", name, ref))
	}
	for i := range 9 {
		e.waitAttached(b, fmt.Sprintf("bench-memory-tp-%d", i), 1, applyTimeout)
	}
	time.Sleep(5 * time.Second) // a few resyncs
	var ws float64
	for b.Loop() {
		ws = float64(e.agentWorkingSet(b)) / (1 << 20)
	}
	b.ReportMetric(ws, "MiB-agent-working-set")
}

// agentWorkingSet is the agent pod's working set in bytes, from its memory
// cgroup (v1 here: memory.usage_in_bytes less total_inactive_file).
func (e *env) agentWorkingSet(b *testing.B) uint64 {
	b.Helper()
	pod, err := e.agentPod(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	pid := e.containerPID(b, pod, "agent")
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.Contains(","+f[1]+",", ",memory,") {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup/memory", filepath.Dir(f[2])) // the pod's cgroup
		usage := readUint(b, filepath.Join(dir, "memory.usage_in_bytes"))
		stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(string(stat), "\n") {
			if v, ok := strings.CutPrefix(l, "total_inactive_file "); ok {
				inactive, _ := strconv.ParseUint(v, 10, 64)
				return usage - min(usage, inactive)
			}
		}
		return usage
	}
	b.Fatalf("agent process %d is in no memory cgroup: %s", pid, raw)
	return 0
}

func readUint(b *testing.B, path string) uint64 {
	b.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func runCmd(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
