package scale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/procstat"
)

// TestFleet runs the scenarios of the scale simulation in order on one
// fleet: start N agents, apply one BpfProgram to every node, upgrade it in
// waves, halt a rollout that fails on some nodes, then hold many programs
// and stay idle. It asserts behaviour only (every node converges, the
// halted rollout rolls back, nothing is written while idle); the figures go
// to the test log and to -scale.report.
func TestFleet(t *testing.T) {
	n := *flagNodes
	resync := *flagResync
	if resync == 0 {
		resync = 30 * time.Second
		if *flagIdle < time.Minute {
			resync = 5 * time.Second
		}
	}
	timeout := 2*time.Minute + time.Duration(n)*200*time.Millisecond
	rep := &report{nodes: n, programs: *flagPrograms, idle: *flagIdle, resync: resync, load: *flagLoad, attach: *flagAttach}
	defer rep.write(t)

	pids, err := controlPlanePIDs()
	if err != nil {
		t.Fatalf("find the control plane: %v", err)
	}
	f := newFleet(t, fleetConfig{nodes: n, loadLatency: *flagLoad, attachLatency: *flagAttach, resync: resync})
	rep.mode = f.mode()
	// Leave the API server empty for the tests after it (TestApplyUpgrade
	// counts every node the watcher sees), while the agents still run.
	t.Cleanup(func() { removeFleetObjects(t, f) })
	ctx := context.Background()
	d1, d2, d3 := f.digests["v1"], f.digests["v2"], f.digests["v3"]
	m := &meter{t: t, f: f, pids: pids, rep: rep}

	// Start: every agent creates its BpfNodeState and reports its kernel.
	heap0, gor0 := heapInUse(), runtime.NumGoroutine()
	m.phase("start agents", func() time.Duration {
		start := time.Now()
		tr := f.watch.track(func(s *v1alpha1.BpfNodeState) bool {
			return s.Status.Kernel.Release != "" && meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady) != nil
		})
		defer f.watch.untrack(tr)
		f.startAgents(t)
		started := time.Since(start)
		took := waitFor(t, start, timeout, func() string {
			return fmt.Sprintf("%d of %d nodes reported", f.watch.met(tr), n)
		}, func() bool { return f.watch.met(tr) == n }, 10*time.Millisecond)
		first := f.watch.untrack(tr)
		rep.add("0. start", "managers created and started", fmtDur(started), "", "")
		rep.add("0. start", "first report per node p50 / p99 (start → BpfNodeState with kernel and Ready)", fmtDur(percentile(first, 50))+" / "+fmtDur(percentile(first, 99)), "", "")
		return took
	})
	if c, err := scrape(ctx, f.adminCfg); err == nil {
		rep.add("0. start", "open watches per node (apiserver_longrunning_requests, WATCH)", fmt.Sprintf("%.2f", c.Watches/float64(n)), "", "")
	}
	heap1, gor1 := heapInUse(), runtime.NumGoroutine()
	rep.heapPerNode = float64(heap1-heap0) / float64(n)
	rep.goroutinesPerNode = float64(gor1-gor0) / float64(n)

	// Scenario 1: one BpfProgram selecting every node.
	const name = "fleet-probe"
	var lat []time.Duration
	var admitted time.Duration
	m.phase("1. apply one BpfProgram to every node", func() (took time.Duration) {
		start := time.Now()
		took, lat = f.rollTo(t, name, d1, timeout, func() {
			if err := f.admin.Create(ctx, newProgram(name, f.repo+":v1", v1alpha1.RolloutSpec{})); err != nil {
				t.Fatalf("create BpfProgram: %v", err)
			}
		}, func(p *v1alpha1.BpfProgram) bool {
			if admitted == 0 && p.Status.Rollout != nil && p.Status.Rollout.TargetDigest == d1 {
				admitted = time.Since(start)
			}
			return true
		})
		rep.add("1. apply to all nodes", "operator admitted the digest (create → status.rollout.targetDigest)", fmtDur(admitted), "", "")
		return took
	})
	rep.add("1. apply to all nodes", "per-node latency p50 (apply → node status Attached)", fmtDur(percentile(lat, 50)), "", "")
	rep.add("1. apply to all nodes", "per-node latency p99", fmtDur(percentile(lat, 99)), "", "")
	rep.add("1. apply to all nodes", "per-node latency max", fmtDur(percentile(lat, 100)), "", "")

	waves := v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutWaves, Waves: []int32{1, 10, 50, 100}}
	// Scenario 2: upgrade the digest in waves.
	m.phase("2. upgrade in waves [1,10,50,100]", func() (took time.Duration) {
		took, lat = f.rollTo(t, name, d2, timeout, func() {
			f.updateProgram(t, name, func(p *v1alpha1.BpfProgram) {
				p.Spec.Bundle.Image = f.repo + ":v2"
				p.Spec.Rollout = waves
			})
		}, func(p *v1alpha1.BpfProgram) bool {
			return p.Status.Rollout != nil && p.Status.Rollout.StableDigest == d2 && p.Status.Rollout.TargetDigest == d2
		})
		return took
	})
	rep.add("2. wave upgrade", "per-node latency p50 (edit → node status at new digest)", fmtDur(percentile(lat, 50)), "", "")
	rep.add("2. wave upgrade", "per-node latency p99", fmtDur(percentile(lat, 99)), "", "")

	// Scenario 3: a rollout the simulator fails on every tenth node.
	f.failDigest(d3)
	var detect, rollback time.Duration
	var tookV3, failedV3 int
	m.phase("3. halted rollout and rollback", func() time.Duration {
		took3 := f.watch.track(attachedAt(name, d3))
		failed3 := f.watch.track(func(s *v1alpha1.BpfNodeState) bool {
			for _, e := range entriesOf(s, name) {
				if e.Digest == d3 && e.State == v1alpha1.PhaseFailed {
					return true
				}
			}
			return false
		})
		start := time.Now()
		f.updateProgram(t, name, func(p *v1alpha1.BpfProgram) { p.Spec.Bundle.Image = f.repo + ":v3" })
		halted := func() bool {
			p := f.watch.program(name)
			return p != nil && p.Status.Rollout != nil && p.Status.Rollout.TargetDigest == d3 && p.Status.Rollout.HaltedReason != ""
		}
		detect = waitFor(t, start, timeout, func() string { return "no halt; program " + describe(f.watch.program(name)) }, halted, 10*time.Millisecond)
		back := attachedAt(name, d2)
		rollback = waitFor(t, start, timeout, func() string {
			return fmt.Sprintf("%d of %d nodes back at v2; program %s", f.watch.nodesWhere(back), n, describe(f.watch.program(name)))
		}, func() bool {
			p := f.watch.program(name)
			return halted() && f.watch.nodesWhere(back) == n && p.Status.Nodes.Attached == int32(n)
		}, 10*time.Millisecond)
		tookV3, failedV3 = len(f.watch.untrack(took3)), len(f.watch.untrack(failed3))
		return rollback
	})
	p := f.watch.program(name)
	t.Logf("halted: %s", p.Status.Rollout.HaltedReason)
	if failedV3 == 0 {
		t.Errorf("no node reported the failing digest Failed, yet the rollout halted")
	}
	rep.add("3. halted rollout", "time to detect (edit → status.rollout.haltedReason)", fmtDur(detect), "", "")
	rep.add("3. halted rollout", "time to roll back (edit → every node Attached at the stable digest)", fmtDur(rollback), "", "")
	rep.add("3. halted rollout", "nodes that ran the bad digest / reported it Failed", fmt.Sprintf("%d / %d (of %d failing nodes)", tookV3, failedV3, f.failingNodes()), "", "")

	// Scenario 4: many programs on every node, then idle.
	total := max(*flagPrograms, 1)
	m.phase(fmt.Sprintf("4a. add %d more BpfPrograms (%d per node)", total-1, total), func() time.Duration {
		start := time.Now()
		f.createPrograms(t, "steady", 1, total)
		all := func(s *v1alpha1.BpfNodeState) bool {
			return s.Status.Summary.Attached == int32(total) && s.Status.Summary.Programs == int32(total)
		}
		readyAll := func(p *v1alpha1.BpfProgram) bool { return ready(p) && p.Status.Nodes.Attached == int32(n) }
		return waitFor(t, start, timeout*3, func() string {
			return fmt.Sprintf("%d of %d nodes run %d programs; %d of %d programs ready", f.watch.nodesWhere(all), n, total, f.watch.programsWhere(readyAll), total)
		}, func() bool {
			// The halted fleet-probe stays Degraded but runs on every node.
			return f.watch.nodesWhere(all) == n && f.watch.programsWhere(readyAll) >= total-1
		}, 250*time.Millisecond)
	})
	settled := m.settle(2 * time.Minute)
	rep.add("4. steady state", fmt.Sprintf("quiet after convergence (no fleet writes for %s)", quietWindow), fmtDur(settled), "", "")
	idle := m.phase(fmt.Sprintf("4b. idle %s with %d programs × %d nodes", *flagIdle, total, n), func() time.Duration {
		time.Sleep(*flagIdle)
		return *flagIdle
	})
	minutes := flagIdle.Minutes()
	fleetWrites := idle.api.writes(fleetResource)
	allWrites := idle.api.writes(anyResource)
	rep.add("4. steady state", "fleet writes per minute at idle (BpfNodeState, BpfProgram, Events, Nodes)", fmt.Sprintf("%.1f", fleetWrites/minutes), "0", yesNo(fleetWrites == 0))
	rep.add("4. steady state", "all writes per minute at idle (incl. the API server's own leases)", fmt.Sprintf("%.1f", allWrites/minutes), "", "")
	rep.add("4. steady state", "API requests per minute at idle, all verbs", fmt.Sprintf("%.1f", idle.api.total(anyResource)/minutes), "", "")
	for _, name := range []string{"kube-apiserver", "etcd", "test process"} {
		rep.add("4. steady state", name+" CPU at idle", fmt.Sprintf("%.1f%% of a core", float64(idle.cpu[name])/float64(*flagIdle)*100), "", "")
	}
	if fleetWrites != 0 {
		t.Errorf("the idle fleet wrote %.0f times in %s: %s", fleetWrites, *flagIdle, idle.api.describeWrites())
	}

	// Goals.
	s1, s2 := m.byName["1. apply one BpfProgram to every node"], m.byName["2. upgrade in waves [1,10,50,100]"]
	rep.add("1. apply to all nodes", "convergence (all nodes Attached, BpfProgram Ready, attached = N)", fmtDur(s1.wall), "< 20 s at 1,000 nodes", goalMet(n, s1.wall < 20*time.Second))
	rep.add("2. wave upgrade", "convergence (every node at the new digest, rollout complete, Ready)", fmtDur(s2.wall), "", "")
	w := s2.api.acceptedWrites(nodeStateOnly) / float64(n)
	rep.add("2. wave upgrade", "BpfNodeState writes per node per rollout (stored; refused attempts not counted)", fmt.Sprintf("%.2f", w), "≤ 2", yesNo(w <= 2))
	rep.add("2. wave upgrade", "BpfNodeState write requests per node per rollout (incl. 409/429/5xx answers)", fmt.Sprintf("%.2f", s2.api.writes(nodeStateOnly)/float64(n)), "", "")
	rep.add("2. wave upgrade", "all writes per node per rollout (incl. Events and the operator's)", fmt.Sprintf("%.2f", s2.api.writes(anyResource)/float64(n)), "", "")
	rep.add("2. wave upgrade", "conflicts (409) / throttled (429) per node per rollout, any request", fmt.Sprintf("%.2f / %.2f", s2.api.Conflicts/float64(n), s2.api.Throttled/float64(n)), "", "")
	rep.add("2. wave upgrade", "Event writes per node per rollout", fmt.Sprintf("%.2f", s2.api.writes(eventOnly)/float64(n)), "", "")

	// Object sizes at steady state, and a linear/quadratic extrapolation.
	var stateBytes int
	if st := f.watch.anyState(); st != nil {
		if b, err := json.Marshal(st); err == nil {
			stateBytes = len(b)
		}
	}
	rep.add("4. steady state", fmt.Sprintf("size of one BpfNodeState with %d programs (JSON)", total), fmt.Sprintf("%d KiB", stateBytes/1024), "", "")
	const big = 5000
	scale := float64(big) / float64(n)
	s0 := m.byName["start agents"]
	rep.add("extrapolated to 5,000 nodes", "open watches on the API server (agents hold 4 each)", fmt.Sprintf("%.0f", s0.api.Watches*scale), "", "")
	rep.add("extrapolated to 5,000 nodes", "kube-apiserver CPU to start the agents (linear in N)", fmtDur(time.Duration(float64(s0.cpu["kube-apiserver"])*scale)), "", "")
	rep.add("extrapolated to 5,000 nodes", "kube-apiserver CPU per wave rollout (linear in N)", fmtDur(time.Duration(float64(s2.cpu["kube-apiserver"])*scale)), "", "")
	var ev float64
	for _, v := range s2.api.WatchEvents {
		ev += v
	}
	rep.add("extrapolated to 5,000 nodes", "watch events sent per wave rollout (every BpfProgram status write reaches every agent: quadratic in N)", fmt.Sprintf("%.2g", ev*scale*scale), "", "")
	rep.add("extrapolated to 5,000 nodes", fmt.Sprintf("BpfNodeState bytes written when all %d programs change once (one write per node)", total), fmt.Sprintf("%.0f MiB", float64(stateBytes)*big/(1<<20)), "", "")
	rep.add("extrapolated to 5,000 nodes", "Go heap of 5,000 simulated agents in one process (per-node heap × N)", fmt.Sprintf("%.1f GiB", rep.heapPerNode*big/(1<<30)), "", "")

	// Memory and process totals.
	rep.add("process", "Go heap per simulated node (manager, informers, reconciler, simulator)", fmt.Sprintf("%.0f KiB", rep.heapPerNode/1024), "", "")
	rep.add("process", "goroutines per simulated node", fmt.Sprintf("%.1f", rep.goroutinesPerNode), "", "")
	for _, name := range []string{"kube-apiserver", "etcd"} {
		s, err := procstat.Read(pids[name])
		if err == nil {
			rep.add("process", name+" RSS at the end (peak)", fmt.Sprintf("%d MiB (%d MiB)", s.RSSKiB/1024, s.HWMKiB/1024), "", "")
		}
	}
	if s, err := procstat.Read(os.Getpid()); err == nil {
		rep.add("process", "test process RSS at the end (peak)", fmt.Sprintf("%d MiB (%d MiB)", s.RSSKiB/1024, s.HWMKiB/1024), "", "")
	}
	rep.add("process", "registry downloads / signature checks (shared cache and memo)", fmt.Sprintf("%d / %d", f.fetches.Load(), f.verifies.Load()), "", "")
}

func goalMet(n int, ok bool) string {
	if n < 1000 {
		return "n/a (" + fmt.Sprint(n) + " nodes)"
	}
	return yesNo(ok)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func ready(p *v1alpha1.BpfProgram) bool {
	return meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady)
}

func describe(p *v1alpha1.BpfProgram) string {
	if p == nil {
		return "not seen"
	}
	var conds []string
	for _, c := range p.Status.Conditions {
		conds = append(conds, c.Type+"="+string(c.Status)+"/"+c.Reason)
	}
	s := fmt.Sprintf("nodes %+v conditions %v", p.Status.Nodes, conds)
	if r := p.Status.Rollout; r != nil {
		s += fmt.Sprintf(" rollout wave %d updated %d halted %q", r.Wave, r.UpdatedNodes, r.HaltedReason)
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

// updateProgram edits BpfProgram name's spec, retrying on conflicts with
// the operator's annotation patches.
func (f *fleet) updateProgram(t testing.TB, name string, edit func(*v1alpha1.BpfProgram)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p v1alpha1.BpfProgram
		if err := f.admin.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
			return err
		}
		edit(&p)
		return f.admin.Update(context.Background(), &p)
	})
	if err != nil {
		t.Fatalf("update BpfProgram %s: %v", name, err)
	}
}

// measured is one phase's wall time, API requests and CPU.
type measured struct {
	name string
	wall time.Duration
	api  apiCounts
	// cpu by process: kube-apiserver, etcd, test process.
	cpu map[string]time.Duration
}

// meter runs phases between two samples of the API server's counters and
// the processes' CPU time.
type meter struct {
	t      *testing.T
	f      *fleet
	pids   map[string]int
	rep    *report
	byName map[string]measured
}

func (m *meter) sample() (apiCounts, map[string]time.Duration) {
	m.t.Helper()
	// An overloaded API server may not answer /metrics within the
	// client's timeout: try again rather than lose the phase's figures.
	c, err := scrape(context.Background(), m.f.adminCfg)
	for try := 1; err != nil && try < 4; try++ {
		m.t.Logf("scrape the API server (try %d): %v", try, err)
		time.Sleep(5 * time.Second)
		c, err = scrape(context.Background(), m.f.adminCfg)
	}
	if err != nil {
		m.t.Fatalf("scrape the API server: %v", err)
	}
	cpu := map[string]time.Duration{"test process": selfCPU()}
	for name, pid := range m.pids {
		s, err := procstat.Read(pid)
		if err != nil {
			m.t.Fatalf("sample %s: %v", name, err)
		}
		cpu[name] = s.CPU
	}
	return c, cpu
}

// phase measures fn, which returns the phase's own wall time figure.
func (m *meter) phase(name string, fn func() time.Duration) measured {
	m.t.Helper()
	api0, cpu0 := m.sample()
	wall := fn()
	api1, cpu1 := m.sample()
	r := measured{name: name, wall: wall, api: api1.sub(api0), cpu: map[string]time.Duration{}}
	for k, v := range cpu1 {
		r.cpu[k] = v - cpu0[k]
	}
	if m.byName == nil {
		m.byName = map[string]measured{}
	}
	m.byName[name] = r
	m.rep.phases = append(m.rep.phases, r)
	m.t.Logf("%s: %s; CPU apiserver %s etcd %s test %s; requests: %s", name, fmtDur(wall),
		r.cpu["kube-apiserver"].Round(10*time.Millisecond), r.cpu["etcd"].Round(10*time.Millisecond),
		r.cpu["test process"].Round(10*time.Millisecond), r.api.describe())
	return r
}

// quietWindow is how long no fleet write must happen before the idle
// period starts: longer than the 10 s (±25%) after which client-go's events
// library retries a failed Event write, so the tail of the last change
// (Event series PATCHes racing their POST) is not counted as idle writes.
const quietWindow = 15 * time.Second

// settle waits until no fleet write happens for quietWindow, at most limit.
func (m *meter) settle(limit time.Duration) time.Duration {
	m.t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		a, _ := m.sample()
		time.Sleep(quietWindow)
		b, _ := m.sample()
		d := b.sub(a)
		if d.writes(fleetResource) == 0 {
			break
		}
		m.t.Logf("settling: %s", d.describeWrites())
	}
	return time.Since(start)
}

func (c apiCounts) total(keep func(string) bool) float64 {
	var n float64
	for k, v := range c.Requests {
		if keep(k.Resource) {
			n += v
		}
	}
	return n
}

func (c apiCounts) describe() string {
	var parts []string
	for _, k := range c.rows() {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, c.Requests[k]))
	}
	return strings.Join(parts, " ")
}

func (c apiCounts) describeWrites() string {
	var parts []string
	for _, k := range c.rows() {
		if writeVerbs[k.Verb] {
			parts = append(parts, fmt.Sprintf("%s=%.0f", k, c.Requests[k]))
		}
	}
	return strings.Join(parts, " ")
}

// report collects the figures and writes them as Markdown.
type report struct {
	// mode is how the agents run (fleet.mode); empty means one manager each.
	mode              string
	nodes, programs   int
	idle, resync      time.Duration
	load, attach      time.Duration
	heapPerNode       float64
	goroutinesPerNode float64
	rows              [][5]string
	phases            []measured
}

func (r *report) add(scenario, figure, value, goal, met string) {
	r.rows = append(r.rows, [5]string{scenario, figure, value, goal, met})
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Fleet scale simulation (test/scale)\n\n")
	mode := r.mode
	if mode == "" {
		mode = "one manager and node-scoped cache each"
	}
	fmt.Fprintf(&b, "%d simulated nodes (real agent reconciler, %s; simulated kernel: load %s, attach %s per program), "+
		"real operator, one envtest kube-apiserver + etcd, loopback registry with signed bundles; %d BpfPrograms at steady state, idle %s, agent resync %s; "+
		"%d CPUs (GOMAXPROCS %d), load average at the end %s (the machine is shared), %s.\n\n",
		r.nodes, mode, r.load, r.attach, r.programs, r.idle, r.resync, runtime.NumCPU(), runtime.GOMAXPROCS(0), loadAvg(), time.Now().UTC().Format("2006-01-02"))
	b.WriteString("| scenario | figure | value | goal | met |\n|---|---|---|---|---|\n")
	sorted := append([][5]string(nil), r.rows...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i][0] < sorted[j][0] })
	for _, row := range sorted {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", row[0], row[1], row[2], row[3], row[4])
	}
	b.WriteString("\nAPI requests per node by verb (apiserver_request_total deltas ÷ N; all clients: agents, operator, the test's own creates/edits and its two watches), wall time and CPU per phase:\n\n")
	verbs := []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"}
	b.WriteString("| phase | wall | " + strings.Join(verbs, " | ") + " | BpfNodeState writes stored | 409 | 429 | 504 | watch events sent | apiserver CPU | etcd CPU | test CPU |\n|---|---|" + strings.Repeat("---|", len(verbs)+8) + "\n")
	for _, p := range r.phases {
		by := p.api.byVerb(anyResource)
		fmt.Fprintf(&b, "| %s | %s |", p.name, fmtDur(p.wall))
		for _, v := range verbs {
			fmt.Fprintf(&b, " %.2f |", by[v]/float64(r.nodes))
		}
		var events float64
		for _, v := range p.api.WatchEvents {
			events += v
		}
		fmt.Fprintf(&b, " %.2f | %.2f | %.2f | %.2f | %.0f | %s | %s | %s |\n", p.api.acceptedWrites(nodeStateOnly)/float64(r.nodes),
			p.api.Conflicts/float64(r.nodes), p.api.Throttled/float64(r.nodes), p.api.Timeouts/float64(r.nodes), events,
			fmtDur(p.cpu["kube-apiserver"]), fmtDur(p.cpu["etcd"]), fmtDur(p.cpu["test process"]))
	}
	b.WriteString("\n409, 429 and 504 are answers per node to any request (conflict on a stale resourceVersion; rejected by API Priority and Fairness; timed out), counted among the requests above.\n")
	b.WriteString("\nRequests by verb and resource per phase (totals):\n\n")
	for _, p := range r.phases {
		fmt.Fprintf(&b, "- %s: %s\n", p.name, p.api.describe())
	}
	return b.String()
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (r *report) write(t *testing.T) {
	md := r.markdown()
	t.Log("\n" + md)
	if *flagReport == "" {
		return
	}
	path := *flagReport
	if !filepath.IsAbs(path) {
		root, err := envtest.RepoRoot()
		if err != nil {
			t.Errorf("find repository root: %v", err)
			return
		}
		path = filepath.Join(root, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Errorf("create report directory: %v", err)
		return
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		t.Errorf("write report: %v", err)
	}
}
