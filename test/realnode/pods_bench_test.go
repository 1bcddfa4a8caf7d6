package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/operator/podprogram"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// agentCPU is the agent process's user+system CPU time so far.
func (e *env) agentCPU(tb testing.TB) time.Duration {
	tb.Helper()
	pod, err := e.agentPod(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.containerPID(tb, pod, "agent")))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the whole line, in clock ticks (USER_HZ 100).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// BenchmarkRealNodePodAttach: a BpfPodProgram attaches the packet-of-death
// filter in every pod labelled app=bench of its namespace; 100 pods start, 10
// at a time, then all go. Reported: pod Running (as the API says) → filter
// attached in its network namespace, p50 and p99 (negative: attached before
// the API said Running; the sandbox's namespace exists first), and the
// agent's CPU while the pods churn against the same agent idle just before.
func BenchmarkRealNodePodAttach(b *testing.B) {
	e := requireBenchSuite(b)
	ctx := context.Background()
	const ns, batch, total = "bench-pods", 10, 100
	e.tenantNamespace(b, ns)
	ref := e.pushBundle(b, filepath.Join(repoDir, "bpf", "xdpfilter"), xdpfilter.BundleName, "0.1.0")
	e.apply(b, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BpfPodProgram
metadata: {name: filter, namespace: %s}
spec:
  bundle: {image: %s}
  programs:
    - name: %s
      xdp: {interfaces: {names: [eth0]}, pods: {selector: {matchLabels: {app: bench}}}}
`, ns, ref, xdpfilter.ProgramName))
	kept := podprogram.ProgramName(ns, "filter")
	b.Cleanup(func() {
		_ = e.client.Delete(context.Background(), &v1.BpfPodProgram{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "filter"}})
	})
	envtest.Eventually(b, applyTimeout, func() error {
		rows := e.entries(b, kept)
		if len(rows) != 1 || rows[0].State != v1.PhaseAttached {
			return fmt.Errorf("rows %+v", rows)
		}
		return nil
	})
	idleFrom, idleCPU := time.Now(), e.agentCPU(b)
	time.Sleep(10 * time.Second)
	idle := float64(e.agentCPU(b)-idleCPU) / float64(time.Since(idleFrom))

	var afterRunning []float64
	var churn float64
	for b.Loop() {
		churnFrom, churnCPU := time.Now(), e.agentCPU(b)
		var pods []*corev1.Pod
		for i := 0; i < total; i += batch {
			running := map[string]time.Time{}
			attached := map[string]time.Time{}
			var these []*corev1.Pod
			for j := i; j < i+batch; j++ {
				these = append(these, e.podIn(b, ns, fmt.Sprintf("bench-%02d", j), map[string]string{"app": "bench"}))
			}
			deadline := time.Now().Add(90 * time.Second)
			for len(attached) < len(these) {
				if time.Now().After(deadline) {
					for _, r := range e.entries(b, kept) {
						b.Logf("node row: %s %s/%s pods %+v: %s", r.AttachPoint, r.State, r.Reason, r.Pods, r.Message)
					}
					if agent, err := e.agentPod(ctx); err == nil {
						b.Logf("agent log:\n%s", e.kubectl(b, "logs", "-n", namespace, agent.Name, "-c", "agent", "--tail=40"))
					}
					b.Fatalf("%d of %d pods attached after 90 s (%d running)", len(attached), len(these), len(running))
				}
				for _, p := range these {
					if _, ok := attached[p.Name]; ok {
						continue
					}
					if _, ok := running[p.Name]; !ok {
						if err := e.client.Get(ctx, client.ObjectKeyFromObject(p), p); err == nil && p.Status.Phase == corev1.PodRunning {
							running[p.Name] = time.Now()
						}
					}
					if len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil && e.podXDP(b, p) != 0 {
						attached[p.Name] = time.Now()
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, p := range these {
				r, ok := running[p.Name]
				if !ok {
					r = attached[p.Name]
				}
				afterRunning = append(afterRunning, float64(attached[p.Name].Sub(r).Milliseconds()))
			}
			pods = append(pods, these...)
		}
		for _, p := range pods {
			_ = e.client.Delete(ctx, p)
		}
		envtest.Eventually(b, 3*time.Minute, func() error {
			var list corev1.PodList
			if err := e.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			if len(list.Items) > 0 {
				return fmt.Errorf("%d pods left", len(list.Items))
			}
			return nil
		})
		churn = float64(e.agentCPU(b)-churnCPU) / float64(time.Since(churnFrom))
	}
	slices.Sort(afterRunning)
	pct := func(p float64) float64 { return afterRunning[int(p*float64(len(afterRunning)-1))] }
	b.ReportMetric(pct(0.5), "ms-running-to-attached-p50")
	b.ReportMetric(pct(0.99), "ms-running-to-attached-p99")
	b.ReportMetric(100*churn, "%cpu-agent-churn")
	b.ReportMetric(100*idle, "%cpu-agent-idle")
	b.Logf("%d pods: Running → attached p50 %.0f ms, p99 %.0f ms (polled every ~10 ms per pod); agent CPU %.1f%% of a core while they start and go, %.2f%% idle just before",
		len(afterRunning), pct(0.5), pct(0.99), 100*churn, 100*idle)
}
