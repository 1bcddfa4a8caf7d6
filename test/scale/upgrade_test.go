package scale_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/procstat"
)

// TestApplyUpgrade is issue 21's item 3: N simulated nodes start, one
// BpfProgram is applied to all of them (goal at 5,000 nodes: every node
// Attached and the program Ready in under 30 s), then its image is upgraded
// in two waves, [50, 100] percent (goal: at most 1.0 stored BpfNodeState
// write per node). It reports per phase the wall time, the CPU of the API
// server, etcd and this process, open watches, watch events by resource,
// writes per node and memory. In the shared-informer mode (-scale.shared)
// it also reports the cluster-wide watch events one manager per node would
// have added (the events each shared watch received, times the nodes that
// share it).
//
// Without -scale.upgrade (make bench-5k sets it) it is a smoke run of the
// same scenario on 10 nodes in the shared-informer mode, so that go test
// ./test/scale checks that mode converges and writes once per node.
func TestApplyUpgrade(t *testing.T) {
	n, shared := *flagNodes, *flagShared
	if !*flagUpgrade {
		n, shared = min(n, 10), true
	}
	pids, err := controlPlanePIDs()
	if err != nil {
		t.Fatalf("find the control plane: %v", err)
	}
	f := newFleet(t, fleetConfig{nodes: n, loadLatency: *flagLoad, attachLatency: *flagAttach, resync: 30 * time.Second, shared: shared})
	t.Cleanup(func() { removeFleetObjects(t, f) })
	rep := &report{nodes: n, programs: 1, resync: 30 * time.Second, load: *flagLoad, attach: *flagAttach, mode: f.mode()}
	defer rep.write(t)
	m := &meter{t: t, f: f, pids: pids, rep: rep}
	ctx := context.Background()
	timeout := 2*time.Minute + time.Duration(n)*200*time.Millisecond
	perNode := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000/float64(n)) }
	cpu := func(p measured) string {
		return fmt.Sprintf("%s / %s / %s (per node %s / %s / %s)", fmtDur(p.cpu["kube-apiserver"]), fmtDur(p.cpu["etcd"]), fmtDur(p.cpu["test process"]),
			perNode(p.cpu["kube-apiserver"]), perNode(p.cpu["etcd"]), perNode(p.cpu["test process"]))
	}

	heap0, gor0 := heapInUse(), runtime.NumGoroutine()
	start := m.phase("start agents", func() time.Duration {
		start := time.Now()
		f.startAgents(t)
		// Thousands of agents starting at once on a loaded machine took
		// longer than a rollout's timeout (5,000 nodes: over 18 minutes).
		return waitFor(t, start, 3*timeout, func() string { return "agents reporting" }, func() bool {
			return f.watch.nodesWhere(func(s *v1alpha1.BpfNodeState) bool {
				return s.Status.Kernel.Release != "" && meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady) != nil
			}) == n
		}, 10*time.Millisecond)
	})
	heap1, gor1 := heapInUse(), runtime.NumGoroutine()
	rep.add("0. start", "every agent reported (kernel, Ready)", fmtDur(start.wall), "", "")
	rep.add("0. start", "kube-apiserver / etcd / test process CPU", cpu(start), "", "")
	if c, err := scrape(ctx, f.adminCfg); err == nil {
		rep.add("0. start", "open watches (per node) by resource", fmt.Sprintf("%.0f (%.2f): %s", c.Watches, c.Watches/float64(n), describeEvents(agentKinds(c.WatchesBy))), "", "")
	}
	rep.add("0. start", "Go heap / goroutines per simulated node", fmt.Sprintf("%.0f KiB / %.1f",
		float64(heap1-heap0)/float64(n)/1024, float64(gor1-gor0)/float64(n)), "", "")
	m.settle(2 * time.Minute)

	const name = "fleet-5k"
	d1, d2 := f.digests["v1"], f.digests["v2"]
	var lat []time.Duration
	apply := m.phase("1. apply one BpfProgram to every node", func() (took time.Duration) {
		took, lat = f.rollTo(t, name, d1, timeout, func() {
			if err := f.admin.Create(ctx, newProgram(name, f.repo+":v1", v1alpha1.RolloutSpec{})); err != nil {
				t.Fatalf("create BpfProgram: %v", err)
			}
		}, nil)
		return took
	})
	rep.add("1. apply", "every node Attached, the program Ready", fmtDur(apply.wall), "< 30 s at 5,000 nodes", goalMet5k(n, apply.wall < 30*time.Second))
	rep.add("1. apply", "per-node latency p50 / p99 (apply → node status Attached)", fmtDur(percentile(lat, 50))+" / "+fmtDur(percentile(lat, 99)), "", "")
	m.settle(2 * time.Minute)

	upgrade := m.phase("2. upgrade in two waves [50,100]", func() (took time.Duration) {
		took, lat = f.rollTo(t, name, d2, timeout, func() {
			f.updateProgram(t, name, func(p *v1alpha1.BpfProgram) {
				p.Spec.Bundle.Image = f.repo + ":v2"
				p.Spec.Rollout = v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutWaves, Waves: []int32{50, 100}}
			})
		}, func(p *v1alpha1.BpfProgram) bool {
			return p.Status.Rollout != nil && p.Status.Rollout.StableDigest == d2 && p.Status.Rollout.TargetDigest == d2
		})
		return took
	})
	w := upgrade.api.acceptedWrites(nodeStateOnly) / float64(n)
	rep.add("2. two-wave upgrade", "every node at the new digest, rollout complete, Ready", fmtDur(upgrade.wall), "", "")
	rep.add("2. two-wave upgrade", "per-node latency p50 / p99 (edit → node status at the new digest)", fmtDur(percentile(lat, 50))+" / "+fmtDur(percentile(lat, 99)), "", "")
	rep.add("2. two-wave upgrade", "BpfNodeState writes per node (stored)", fmt.Sprintf("%.2f", w), "≤ 1.0", yesNo(w <= 1.0))
	if w > 1.0 {
		t.Errorf("a two-wave upgrade wrote %.2f BpfNodeStates per node, want at most 1: %s", w, upgrade.api.describeWrites())
	}

	for _, p := range []measured{apply, upgrade} {
		scenario := p.name[:2] + map[bool]string{true: " apply", false: " two-wave upgrade"}[p.name == apply.name]
		rep.add(scenario, "kube-apiserver / etcd / test process CPU", cpu(p), "", "")
		rep.add(scenario, "BpfNodeState writes per node: stored / requests (429 among all requests)", fmt.Sprintf("%.2f / %.2f (%.2f)",
			p.api.acceptedWrites(nodeStateOnly)/float64(n), p.api.writes(nodeStateOnly)/float64(n), p.api.Throttled/float64(n)), "", "")
		rep.add(scenario, "BpfProgram writes (create, spec, metadata, status)", fmt.Sprintf("%.0f", p.api.writes(func(r string) bool { return r == "bpfprograms" })), "", "")
		var events float64
		for _, v := range p.api.WatchEvents {
			events += v
		}
		rep.add(scenario, "watch events sent (per node) by resource", fmt.Sprintf("%.0f (%.1f): %s", events, events/float64(n), describeEvents(p.api.WatchEvents)), "", "")
		if shared {
			missing := fanOut(p.api, n, f.sharedResources())
			rep.add(scenario, "cluster-wide watch events one manager per node would add (events per shared watch × (N − 1))",
				fmt.Sprintf("%.0f (%.1f per node): %s", sum(missing), sum(missing)/float64(n), describeEvents(missing)), "", "")
		}
	}
	for name, pid := range map[string]int{"kube-apiserver": pids["kube-apiserver"], "etcd": pids["etcd"], "test process": os.Getpid()} {
		if s, err := procstat.Read(pid); err == nil {
			rep.add("process", name+" RSS at the end (peak)", fmt.Sprintf("%d MiB (%d MiB)", s.RSSKiB/1024, s.HWMKiB/1024), "", "")
		}
	}
}

// fanOut estimates, for each kind the shared-informer mode reads from its
// one shared cache, the watch events the API server would have sent had
// every node held its own watch: each event the shared watch received
// (events of the kind ÷ its open watches, the operator's and the test's
// among them) sent to N − 1 more watchers.
func fanOut(c apiCounts, n int, resources []string) map[string]float64 {
	out := map[string]float64{}
	for _, kind := range resources {
		if w := c.WatchesBy[kind]; w > 0 {
			out[kind] = c.WatchEvents[kind] / w * float64(n-1)
		}
	}
	return out
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// agentKinds keeps the resources an agent reads of byResource.
func agentKinds(byResource map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, r := range []string{"nodes", "bpfnodestates", "pods", "bpfprograms", "bundletrustpolicies", "namespaces"} {
		if v, ok := byResource[r]; ok {
			out[r] = v
		}
	}
	return out
}
