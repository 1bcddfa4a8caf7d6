package scale_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/bpfbench"
)

// BenchmarkFleetRollout runs, on a simulated fleet of 1,000 nodes
// (-scale.nodes or env BPFLEET_SCALE_NODES change it) against the real
// apiserver, one BpfProgram's life per round: apply to every node, upgrade
// in waves [1, 10, 50, 100], delete. It reports the time until every node
// reports each step, and BpfNodeState writes per node per step, the figures
// TestFleet's full report also has.
func BenchmarkFleetRollout(b *testing.B) {
	n := benchNodes()
	timeout := 2*time.Minute + time.Duration(n)*200*time.Millisecond
	f := newFleet(b, fleetConfig{nodes: n, loadLatency: *flagLoad, attachLatency: *flagAttach, resync: 30 * time.Second})
	f.startAgents(b)
	waitFor(b, time.Now(), timeout, func() string { return "agents reporting" }, func() bool {
		return f.watch.nodesWhere(func(s *v1alpha1.BpfNodeState) bool {
			return s.Status.Kernel.Release != "" && meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady) != nil
		}) == n
	}, 10*time.Millisecond)
	ctx := context.Background()
	// Start-up writes (first reports, inventories) are not the rollout's.
	quiet := func() {
		for range 30 {
			before, err := scrape(ctx, f.adminCfg)
			if err != nil {
				b.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			after, err := scrape(ctx, f.adminCfg)
			if err != nil {
				b.Fatal(err)
			}
			if after.sub(before).writes(nodeStateOnly) == 0 {
				return
			}
		}
		b.Fatal("BpfNodeStates still written after a minute")
	}
	quiet()
	d1, d2 := f.digests["v1"], f.digests["v2"]

	// step runs one change and returns its wall time and BpfNodeState
	// writes per node, from the apiserver's own request counters.
	step := func(name string, change func(), done func() bool, what func() string) (time.Duration, float64) {
		before, err := scrape(ctx, f.adminCfg)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		change()
		took := waitFor(b, start, timeout, what, done, 10*time.Millisecond)
		after, err := scrape(ctx, f.adminCfg)
		if err != nil {
			b.Fatal(err)
		}
		d := after.sub(before)
		b.Logf("%s on %d nodes: %s; write requests %s, of which %.0f throttled (429), %.0f conflicts, %.0f timeouts", name, n, fmtDur(took), d.describeWrites(), d.Throttled, d.Conflicts, d.Timeouts)
		return took, d.acceptedWrites(nodeStateOnly) / float64(n)
	}
	var applyS, upgradeS, deleteS, applyW, upgradeW []float64
	round := 0
	for b.Loop() {
		round++
		name := fmt.Sprintf("bench-fleet-%d", round)
		program := func() *v1alpha1.BpfProgram { return f.watch.program(name) }
		at := func(digest string) func() bool {
			return func() bool {
				p := program()
				return f.watch.nodesWhere(attachedAt(name, digest)) == n && p != nil && ready(p) && p.Status.Nodes.Attached == int32(n)
			}
		}
		describeAt := func() string { return fmt.Sprintf("program %s", describe(program())) }

		quiet()
		took, w := step("apply", func() {
			if err := f.admin.Create(ctx, newProgram(name, f.repo+":v1", v1alpha1.RolloutSpec{})); err != nil {
				b.Fatal(err)
			}
		}, at(d1), describeAt)
		applyS, applyW = append(applyS, took.Seconds()), append(applyW, w)

		took, w = step("wave upgrade", func() {
			f.updateProgram(b, name, func(p *v1alpha1.BpfProgram) {
				p.Spec.Bundle.Image = f.repo + ":v2"
				p.Spec.Rollout = v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutWaves, Waves: []int32{1, 10, 50, 100}}
			})
		}, func() bool {
			p := program()
			return at(d2)() && p.Status.Rollout != nil && p.Status.Rollout.StableDigest == d2
		}, describeAt)
		upgradeS, upgradeW = append(upgradeS, took.Seconds()), append(upgradeW, w)
		took, _ = step("delete", func() {
			if err := f.admin.Delete(ctx, &v1alpha1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
				b.Fatal(err)
			}
		}, func() bool {
			return f.watch.nodesWhere(func(s *v1alpha1.BpfNodeState) bool { return len(entriesOf(s, name)) == 0 }) == n
		}, func() string { return "delete" })
		deleteS = append(deleteS, took.Seconds())
	}
	b.ReportMetric(float64(n), "nodes")
	b.ReportMetric(bpfbench.Median(applyS), "s-apply-all-attached")
	b.ReportMetric(bpfbench.Median(upgradeS), "s-wave-upgrade-all-attached")
	b.ReportMetric(bpfbench.Median(deleteS), "s-delete-all-clean")
	b.ReportMetric(bpfbench.Median(applyW), "apply-nodestate-writes/node")
	b.ReportMetric(bpfbench.Median(upgradeW), "upgrade-nodestate-writes/node")
}

// benchNodes is the benchmark's fleet size: 1,000, the figure,
// unless -scale.nodes or BPFLEET_SCALE_NODES says otherwise (their default
// of 50 is the small run of go test).
func benchNodes() int {
	n := 1000
	if os.Getenv("BPFLEET_SCALE_NODES") != "" {
		n = *flagNodes
	}
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "scale.nodes" {
			n = *flagNodes
		}
	})
	return n
}
