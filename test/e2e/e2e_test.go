package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/rollout"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/localenv"
)

// TestFilterOnSelectedNodes: a signed filter lands on exactly the nodes its
// selector picks, kubectl bpf status shows what the kernel runs, packets of
// death are dropped there only, and a rule added through spec.mapEntries takes
// effect without a reload.
func TestFilterOnSelectedNodes(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	p, err := e.FilterProgram("e2e-filter")
	if err != nil {
		t.Fatal(err)
	}
	rules := p.Spec.MapEntries
	p.Spec.MapEntries = nil // start with an empty rule table
	apply(t, e, p)

	selected := 0
	for _, n := range e.Nodes {
		if n.Labels[localenv.FilterLabel] == "enabled" {
			selected++
		}
	}
	if _, err := e.WaitReady(ctx, p.Name, int32(selected), time.Minute); err != nil {
		t.Fatal(err)
	}

	rows := kubectlBPF(t, e, "status", p.Name)
	var onNodes []string
	for _, r := range rows {
		onNodes = append(onNodes, r["NODE"])
		if r["STATE"] != string(v1.PhaseAttached) || r["ATTACH POINT"] != "xdp/eth0" {
			t.Errorf("row %v: want Attached at xdp/eth0", r)
		}
	}
	ids := map[string]uint32{}
	for _, n := range e.Nodes {
		want := n.Labels[localenv.FilterLabel] == "enabled"
		if got := slices.Contains(onNodes, n.Name); got != want {
			t.Errorf("node %s in kubectl bpf status: %t, want %t (rows %v)", n.Name, got, want, rows)
		}
		kernelID := xdpProgramID(t, n)
		if !want {
			if kernelID != 0 {
				t.Errorf("node %s is not selected but runs XDP program %d", n.Name, kernelID)
			}
			continue
		}
		for _, r := range rows {
			if r["NODE"] == n.Name && r["ID"] != fmt.Sprint(kernelID) {
				t.Errorf("node %s: kubectl bpf status says id %s, the kernel runs %d", n.Name, r["ID"], kernelID)
			}
		}
		ids[n.Name] = kernelID
		// No rule yet: packets of death pass.
		tr, err := e.SendTraffic(ctx, n, 20)
		if err != nil {
			t.Fatal(err)
		}
		if tr.GoodReceived != 20 || tr.BadReceived != 20 {
			t.Errorf("node %s without rules: %s, want everything delivered", n.Name, tr)
		}
	}

	// Add the rule: no reload, dropped at once.
	var cur v1.BpfProgram
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.MapEntries = rules
	if err := e.Client.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		var tr localenv.Traffic
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			tr, err = e.SendTraffic(ctx, n, 10)
			return err != nil || tr.BadReceived == 0 || n.Labels[localenv.FilterLabel] != "enabled", err
		})
		if err != nil {
			t.Fatalf("node %s: rule never took effect (last: %s): %v", n.Name, tr, err)
		}
		if n.Labels[localenv.FilterLabel] != "enabled" {
			if tr.BadReceived != tr.BadSent {
				t.Errorf("unselected node %s filtered traffic: %s", n.Name, tr)
			}
			continue
		}
		if tr.GoodReceived != tr.GoodSent {
			t.Errorf("node %s: %s, want every good packet", n.Name, tr)
		}
		if got := xdpProgramID(t, n); got != ids[n.Name] {
			t.Errorf("node %s: program reloaded for a map change (id %d → %d)", n.Name, ids[n.Name], got)
		}
	}
}

// TestUpgradeInWavesThenHaltAndRollBack: a new digest reaches the wave-0 node
// first and the others after it; a release the verifier rejects halts the
// rollout at its first wave and the fleet returns to the stable digest.
func TestUpgradeInWavesThenHaltAndRollBack(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	p, err := e.FilterProgram("e2e-upgrade")
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.NodeSelector = nil // every node
	p.Spec.MapEntries = nil
	apply(t, e, p)
	if _, err := e.WaitReady(ctx, p.Name, int32(len(e.Nodes)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	v1Digest := p.Status.ResolvedDigest

	// One wave boundary that puts exactly the node with the lowest bucket
	// in wave 0.
	type nb struct {
		name   string
		bucket int32
	}
	var buckets []nb
	for _, n := range e.Nodes {
		buckets = append(buckets, nb{n.Name, rollout.Bucket(n.Name, p.UID)})
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].bucket < buckets[j].bucket })
	wave0 := map[string]bool{}
	for _, b := range buckets {
		if b.bucket == buckets[0].bucket {
			wave0[b.name] = true
		}
	}
	if len(wave0) == len(buckets) {
		t.Fatalf("every node hashes to bucket %d; no wave boundary separates them", buckets[0].bucket)
	}
	waves := []int32{buckets[0].bucket + 1, 100}
	links := map[string]uint32{}
	for _, n := range e.Nodes {
		links[n.Name] = entry(nodeState(t, e, n.Name), p.Name).LinkID
	}

	v2 := bundleVersion(t, e, filepath.Join(repoDir, "bpf", "xdpfilter"), "0.2.0")
	if v2.Digest == v1Digest {
		t.Fatal("new version has the old digest")
	}
	p.Spec.Bundle.Image = v2.Ref
	p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: waves, PauseSeconds: 3}
	if err := e.Client.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	// Until every wave-0 node runs v2, no later node may take it.
	sawWave0Alone := false
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		onV2, wave0OnV2 := 0, 0
		for _, n := range e.Nodes {
			en := entry(nodeState(t, e, n.Name), p.Name)
			if en != nil && en.Digest == v2.Digest && en.State == v1.PhaseAttached {
				onV2++
				if wave0[n.Name] {
					wave0OnV2++
				}
			}
		}
		if onV2 > wave0OnV2 && wave0OnV2 < len(wave0) {
			return false, fmt.Errorf("a later-wave node runs v2 before every wave-0 node %v does", wave0)
		}
		if onV2 == len(wave0) && wave0OnV2 == len(wave0) {
			sawWave0Alone = true
		}
		return onV2 == len(e.Nodes), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawWave0Alone {
		t.Error("never saw the wave-0 nodes on v2 alone: waves were not respected")
	}
	for _, n := range e.Nodes {
		en := entry(nodeState(t, e, n.Name), p.Name)
		if en.LinkID != links[n.Name] {
			t.Errorf("node %s: link %d replaced by %d; an upgrade must swap the program in the same link", n.Name, links[n.Name], en.LinkID)
		}
	}
	if _, err := e.WaitReady(ctx, p.Name, int32(len(e.Nodes)), time.Minute); err != nil {
		t.Fatal(err)
	}

	// A release the verifier rejects: halted at wave 0, rolled back.
	broken := brokenFilterBundle(t, e)
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Bundle.Image = broken.Ref
	if err := e.Client.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return false, err
		}
		return p.Status.Rollout != nil && p.Status.Rollout.HaltedReason != "", nil
	})
	if err != nil {
		t.Fatalf("rollout of a broken release never halted (status %+v): %v", p.Status.Rollout, err)
	}
	for _, failed := range p.Status.Rollout.FailedNodes {
		if !wave0[failed] {
			t.Errorf("node %s failed the broken release, but only wave-0 nodes %v should have tried it", failed, wave0)
		}
	}
	if len(p.Status.Rollout.FailedNodes) == 0 {
		t.Error("halted rollout names no failed node")
	}
	waitNodes(t, e, "every node runs v2 again", func(s v1.BpfNodeState) bool {
		en := entry(s, p.Name)
		return en != nil && en.Digest == v2.Digest && en.State == v1.PhaseAttached
	})
	for _, n := range e.Nodes {
		if id := xdpProgramID(t, n); id == 0 {
			t.Errorf("node %s runs no filter after the rollback", n.Name)
		}
	}
	var events eventsv1.EventList
	if err := e.Client.List(ctx, &events); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range events.Items {
		if ev.Regarding.Name == p.Name {
			reasons = append(reasons, ev.Reason)
		}
	}
	for _, want := range []string{v1.ReasonRolloutHalted, v1.ReasonRolledBack} {
		if !slices.Contains(reasons, want) {
			t.Errorf("no %s event for %s (events: %v)", want, p.Name, reasons)
		}
	}
}

// TestDeleteLeavesNothing: deleting a BpfProgram detaches it everywhere and
// leaves no pin behind.
func TestDeleteLeavesNothing(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	p, err := e.FilterProgram("e2e-delete")
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.NodeSelector = nil
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitReady(ctx, p.Name, int32(len(e.Nodes)), time.Minute); err != nil {
		t.Fatal(err)
	}
	trace, err := e.ExecTraceProgram("e2e-delete-trace")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, trace); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitReady(ctx, trace.Name, int32(len(e.Nodes)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteAll(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		if id := xdpProgramID(t, n); id != 0 {
			t.Errorf("node %s still runs XDP program %d", n.Name, id)
		}
		var left []string
		_ = filepath.Walk(n.BPFFSRoot, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				left = append(left, path)
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("node %s: pins left: %v", n.Name, left)
		}
	}
}
