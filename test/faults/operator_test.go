package faults

import (
	"context"
	"sort"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/rollout"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestOperatorKilledMidRollout: the operator stops while a rollout waits
// between waves; no node moves while it is gone, and a new operator (fresh
// manager and cache) resumes at the same wave, never rolling back the nodes
// already updated, until every node runs the new release.
func TestOperatorKilledMidRollout(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	p, err := e.FilterProgram("operator-killed")
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Bundle.Image = v1Ref
	p.Spec.NodeSelector = nil
	removeLater(t, e, p)
	t.Cleanup(func() { _ = e.StartOperator(ctx) }) // when the test failed with it stopped
	create(t, e, p)
	if _, err := e.WaitReady(ctx, p.Name, int32(len(e.Nodes)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	// One wave per distinct bucket, the first holding the lowest.
	buckets := map[string]int32{}
	var distinct []int32
	for _, n := range e.Nodes {
		b := rollout.Bucket(n.Name, p.UID)
		buckets[n.Name] = b
		distinct = append(distinct, b)
	}
	sort.Slice(distinct, func(i, j int) bool { return distinct[i] < distinct[j] })
	var waves []int32
	for _, b := range distinct {
		if len(waves) == 0 || waves[len(waves)-1] <= b {
			waves = append(waves, b+1)
		}
	}
	waves[len(waves)-1] = 100
	if len(waves) < 2 {
		t.Skipf("every node hashes to bucket %d: no wave boundary to stop at", distinct[0])
	}
	links := map[string]uint32{}
	for _, n := range e.Nodes {
		var s v1.BpfNodeState
		if err := e.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &s); err != nil {
			t.Fatal(err)
		}
		links[n.Name] = entry(s, p.Name).LinkID
	}
	onV2 := func(ctx context.Context) (map[string]bool, error) {
		out := map[string]bool{}
		for _, n := range e.Nodes {
			var s v1.BpfNodeState
			if err := e.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &s); err != nil {
				return nil, err
			}
			en := entry(s, p.Name)
			out[n.Name] = en != nil && en.State == v1.PhaseAttached && en.Digest == v2Digest
		}
		return out, nil
	}

	update(t, e, p, func(p *v1.BpfProgram) {
		p.Spec.Bundle.Image = v2Ref
		p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: waves, PauseSeconds: 6}
	})
	var firstWave map[string]bool
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		v2, err := onV2(ctx)
		if err != nil {
			return false, err
		}
		n := 0
		for _, ok := range v2 {
			if ok {
				n++
			}
		}
		firstWave = v2
		return n > 0, nil
	})
	if err != nil {
		t.Fatalf("no node took v2: %v", err)
	}
	if err := e.StopOperator(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	stopped := *p.Status.Rollout
	time.Sleep(7 * time.Second) // longer than the pause: a live operator would have moved on
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	if p.Status.Rollout.Wave != stopped.Wave || p.Status.Rollout.TargetDigest != v2Digest {
		t.Errorf("rollout moved without an operator: %+v → %+v", stopped, *p.Status.Rollout)
	}
	frozen, err := onV2(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, ok := range frozen {
		if ok != firstWave[name] {
			t.Errorf("node %s changed (on v2: %t → %t) while no operator ran", name, firstWave[name], ok)
		}
	}

	if err := e.StartOperator(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	minWave := stopped.Wave
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var cur v1.BpfProgram
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), &cur); err != nil {
			return false, err
		}
		r := cur.Status.Rollout
		if r == nil || r.TargetDigest != v2Digest || r.HaltedReason != "" {
			t.Errorf("after the restart the rollout went astray: %+v", r)
			return true, nil
		}
		if rollout.InProgress(r) && r.Wave < minWave {
			t.Errorf("the new operator restarted the rollout at wave %d, it had reached %d", r.Wave, minWave)
			return true, nil
		}
		v2, err := onV2(ctx)
		if err != nil {
			return false, err
		}
		all := true
		for name, ok := range v2 {
			if firstWave[name] && !ok {
				t.Errorf("node %s left v2 after the operator restarted", name)
				return true, nil
			}
			all = all && ok
		}
		return all && !rollout.InProgress(r), nil
	})
	if err != nil {
		t.Fatalf("rollout did not complete after the operator restarted: %v", err)
	}
	for _, n := range e.Nodes {
		var s v1.BpfNodeState
		if err := e.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &s); err != nil {
			t.Fatal(err)
		}
		if got := entry(s, p.Name).LinkID; got != links[n.Name] {
			t.Errorf("node %s: link %d replaced by %d", n.Name, links[n.Name], got)
		}
	}
	report(t, "operator killed mid-rollout", "waves %v; stopped at wave %d (%d node(s) on v2) for %s: nothing moved; new operator resumed, all %d nodes on v2 %s after restart",
		waves, stopped.Wave, count(firstWave), restarted.Sub(stoppedAt).Round(time.Second), len(e.Nodes), time.Since(restarted).Round(100*time.Millisecond))
}

func count(m map[string]bool) int {
	n := 0
	for _, ok := range m {
		if ok {
			n++
		}
	}
	return n
}
