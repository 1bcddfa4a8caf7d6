package scale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/procstat"
)

// TestManyPrograms is issue 21's item 2 on its own: N simulated nodes each
// running one BpfProgram get P-1 more at once (the harness creates them 16
// at a time), and the test waits until every node runs all P and every
// program is Ready with N nodes attached. It reports the wall time, the
// watch events the API server sent (apiserver_watch_events_total, by
// resource), BpfNodeState and BpfProgram writes, the API server's CPU and
// the size of one BpfNodeState with P programs. Without -scale.many (make
// bench-many sets it) it is a smoke run of the same scenario, 10 nodes
// getting 2 more programs, so that `go test ./test/scale` stays small and
// still checks the scenario converges.
func TestManyPrograms(t *testing.T) {
	n, total := *flagNodes, max(*flagPrograms, 2)
	if !*flagMany {
		n, total = min(n, 10), 3
	}
	pids, err := controlPlanePIDs()
	if err != nil {
		t.Fatalf("find the control plane: %v", err)
	}
	f := newFleet(t, fleetConfig{nodes: n, loadLatency: *flagLoad, attachLatency: *flagAttach, resync: 30 * time.Second})
	ctx := context.Background()
	// Leave the API server as TestFleet expects it, while the agents still
	// run (cleanups run last first): no program, no node, no node state.
	t.Cleanup(func() { removeFleetObjects(t, f) })
	rep := &report{nodes: n, programs: total, resync: 30 * time.Second, load: *flagLoad, attach: *flagAttach, mode: f.mode()}
	defer rep.write(t)
	m := &meter{t: t, f: f, pids: pids, rep: rep}
	timeout := 2*time.Minute + time.Duration(n)*200*time.Millisecond

	heap0, gor0 := heapInUse(), runtime.NumGoroutine()
	start := m.phase("start agents", func() time.Duration {
		start := time.Now()
		f.startAgents(t)
		return waitFor(t, start, timeout, func() string { return "agents reporting" }, func() bool {
			return f.watch.nodesWhere(func(s *v1alpha1.BpfNodeState) bool {
				return s.Status.Kernel.Release != "" && meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady) != nil
			}) == n
		}, 10*time.Millisecond)
	})
	heap1, gor1 := heapInUse(), runtime.NumGoroutine()
	if c, err := scrape(ctx, f.adminCfg); err == nil {
		rep.add("per node", "open watches per node (apiserver_longrunning_requests, WATCH)", fmt.Sprintf("%.2f", c.Watches/float64(n)), "", "")
	}
	rep.add("per node", "Go heap / goroutines per simulated node after start (manager, informers, reconciler, simulator)",
		fmt.Sprintf("%.0f KiB / %.1f", float64(heap1-heap0)/float64(n)/1024, float64(gor1-gor0)/float64(n)), "", "")
	rep.add("per node", "kube-apiserver / etcd CPU per node to start the agents (first list, watches, first report)",
		fmt.Sprintf("%.1f ms / %.1f ms", float64(start.cpu["kube-apiserver"].Milliseconds())/float64(n), float64(start.cpu["etcd"].Milliseconds())/float64(n)), "", "")
	d1 := f.digests["v1"]
	apply := m.phase("apply one BpfProgram to every node", func() time.Duration {
		start := time.Now()
		if err := f.admin.Create(ctx, newProgram("many-000", f.repo+":v1", v1alpha1.RolloutSpec{})); err != nil {
			t.Fatalf("create BpfProgram: %v", err)
		}
		return waitFor(t, start, timeout, func() string { return "first program" }, func() bool {
			p := f.watch.program("many-000")
			return f.watch.nodesWhere(attachedAt("many-000", d1)) == n && p != nil && ready(p) && p.Status.Nodes.Attached == int32(n)
		}, 10*time.Millisecond)
	})
	var applyEvents float64
	for _, v := range apply.api.WatchEvents {
		applyEvents += v
	}
	rep.add("apply", "apply one BpfProgram → every node Attached and the program Ready", fmtDur(apply.wall), "< 30 s at 5,000 nodes", goalMet5k(n, apply.wall < 30*time.Second))
	rep.add("apply", "BpfNodeState writes per node (stored) / BpfProgram writes", fmt.Sprintf("%.2f / %.0f",
		apply.api.acceptedWrites(nodeStateOnly)/float64(n), apply.api.writes(func(r string) bool { return r == "bpfprograms" })), "", "")
	rep.add("apply", "watch events sent (per node) / kube-apiserver CPU per node", fmt.Sprintf("%.0f (%.1f) / %.1f ms", applyEvents, applyEvents/float64(n),
		float64(apply.cpu["kube-apiserver"].Milliseconds())/float64(n)), "", "")
	m.settle(2 * time.Minute)

	var progress string
	add := m.phase(fmt.Sprintf("add %d BpfPrograms (%d per node)", total-1, total), func() time.Duration {
		start := time.Now()
		f.createPrograms(t, "many", 1, total)
		all := func(s *v1alpha1.BpfNodeState) bool {
			return s.Status.Summary.Attached == int32(total) && s.Status.Summary.Programs == int32(total)
		}
		readyAll := func(p *v1alpha1.BpfProgram) bool { return ready(p) && p.Status.Nodes.Attached == int32(n) }
		// Not waitFor: a run that does not converge still reports what
		// the API server did meanwhile.
		for f.watch.nodesWhere(all) != n || f.watch.programsWhere(readyAll) != total {
			if time.Since(start) > *flagLimit {
				progress = fmt.Sprintf("not converged after %s: %d of %d nodes run %d programs; %d of %d programs ready",
					*flagLimit, f.watch.nodesWhere(all), n, total, f.watch.programsWhere(readyAll), total)
				return time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	})
	if progress != "" {
		t.Error(progress)
	}

	var stateBytes, statusBytes int
	if st := f.watch.anyState(); st != nil {
		if b, err := json.Marshal(st); err == nil {
			stateBytes = len(b)
		}
		if b, err := json.Marshal(st.Status); err == nil {
			statusBytes = len(b)
		}
	}
	var events float64
	for _, v := range add.api.WatchEvents {
		events += v
	}
	scenario := "many programs"
	wall := fmtDur(add.wall)
	if progress != "" {
		wall = progress
	}
	rep.add(scenario, fmt.Sprintf("adding %d programs until every node runs %d and every program is Ready", total-1, total), wall,
		"< 60 s at 1,000 nodes × 100", goalMet100(n, total, progress == "" && add.wall < time.Minute))
	rep.add(scenario, fmt.Sprintf("one BpfNodeState with %d programs (JSON, status only)", total), fmt.Sprintf("%.1f KiB (%.1f KiB)", float64(stateBytes)/1024, float64(statusBytes)/1024),
		"< 16 KiB at 100", yesNo(total < 100 || stateBytes < 16<<10))
	rep.add(scenario, "watch events sent while adding (all resources)", fmt.Sprintf("%.0f (%.1f per node)", events, events/float64(n)), "", "")
	rep.add(scenario, "watch events sent by resource", describeEvents(add.api.WatchEvents), "", "")
	rep.add(scenario, "BpfNodeState writes per node: stored / requests (429 among them)",
		fmt.Sprintf("%.2f / %.2f (%.2f)", add.api.acceptedWrites(nodeStateOnly)/float64(n), add.api.writes(nodeStateOnly)/float64(n), add.api.Throttled/float64(n)), "", "")
	rep.add(scenario, "BpfNodeState bytes while adding: written by agents (request bodies) / sent to watchers, per node",
		fmt.Sprintf("%.1f MiB / %.1f MiB (%.0f KiB / %.0f KiB)", add.api.NodeStateWriteBytes/(1<<20), add.api.NodeStateWatchBytes/(1<<20),
			add.api.NodeStateWriteBytes/1024/float64(n), add.api.NodeStateWatchBytes/1024/float64(n)), "", "")
	rep.add(scenario, "etcd time per stored BpfNodeState write (mean of etcd_request_duration_seconds, update)",
		fmt.Sprintf("%s over %.0f updates", fmtDur(add.api.etcdUpdateMean()), add.api.NodeStateEtcdUpdates), "", "")
	rep.add(scenario, "BpfProgram writes per program (spec, metadata and status)",
		fmt.Sprintf("%.2f", add.api.writes(func(r string) bool { return r == "bpfprograms" })/float64(total-1)), "", "")
	rep.add(scenario, "kube-apiserver / etcd / test process CPU while adding", fmt.Sprintf("%s / %s / %s",
		fmtDur(add.cpu["kube-apiserver"]), fmtDur(add.cpu["etcd"]), fmtDur(add.cpu["test process"])), "", "")
	for name, pid := range map[string]int{"kube-apiserver": pids["kube-apiserver"], "etcd": pids["etcd"], "test process": os.Getpid()} {
		if s, err := procstat.Read(pid); err == nil {
			rep.add("process", name+" RSS at the end (peak)", fmt.Sprintf("%d MiB (%d MiB)", s.RSSKiB/1024, s.HWMKiB/1024), "", "")
		}
	}
	t.Logf("many programs: %d nodes × %d programs converged in %s; %.0f watch events (%s); one BpfNodeState %d bytes",
		n, total, fmtDur(add.wall), events, describeEvents(add.api.WatchEvents), stateBytes)
}

func goalMet100(n, programs int, ok bool) string {
	if programs < 100 {
		return "n/a (" + fmt.Sprint(programs) + " programs)"
	}
	return goalMet(n, ok)
}

func goalMet5k(n int, ok bool) string {
	if n < 5000 {
		return "n/a (" + fmt.Sprint(n) + " nodes)"
	}
	return yesNo(ok)
}

func describeEvents(byResource map[string]float64) string {
	keys := make([]string, 0, len(byResource))
	for k, v := range byResource {
		if v >= 1 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return byResource[keys[i]] > byResource[keys[j]] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, byResource[k]))
	}
	return strings.Join(parts, ", ")
}

// removeFleetObjects deletes every BpfProgram, waits until their
// finalizers are released (the agents detach them), then deletes the
// simulated Nodes and their BpfNodeStates.
func removeFleetObjects(t *testing.T, f *fleet) {
	ctx := context.Background()
	if err := f.admin.DeleteAllOf(ctx, &v1alpha1.BpfProgram{}); err != nil {
		t.Errorf("delete the BpfPrograms: %v", err)
		return
	}
	waitFor(t, time.Now(), 2*time.Minute, func() string { return "BpfPrograms gone" }, func() bool {
		var list v1alpha1.BpfProgramList
		return f.admin.List(ctx, &list) == nil && len(list.Items) == 0
	}, 100*time.Millisecond)
	if err := f.admin.DeleteAllOf(ctx, &corev1.Node{}); err != nil {
		t.Errorf("delete the Nodes: %v", err)
	}
	if err := f.admin.DeleteAllOf(ctx, &v1alpha1.BpfNodeState{}); err != nil {
		t.Errorf("delete the BpfNodeStates: %v", err)
	}
}
