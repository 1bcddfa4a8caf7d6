package faults

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/rollout"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/localenv"
)

// operatorProcess is bpfleet-operator run as its own process, with leader
// election as in its Deployment, so that a test can SIGKILL it.
type operatorProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

func startOperatorProcess(t *testing.T, e *localenv.Env) *operatorProcess {
	t.Helper()
	o := &operatorProcess{done: make(chan struct{}), log: &bytes.Buffer{}}
	o.cmd = exec.Command(opBin, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--leader-elect", "--leader-election-namespace", "default", "--registry-plain-http")
	o.cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	o.cmd.Stdout, o.cmd.Stderr = o.log, o.log
	if err := o.cmd.Start(); err != nil {
		t.Fatalf("start bpfleet-operator: %v", err)
	}
	go func() { _ = o.cmd.Wait(); close(o.done) }()
	t.Cleanup(o.kill)
	return o
}

// kill sends SIGKILL: no lease release, no hand-over, a reconcile cut short.
func (o *operatorProcess) kill() {
	_ = o.cmd.Process.Signal(syscall.SIGKILL)
	<-o.done
}

// TestOperatorKilledMidRollout: the operator (bpfleet-operator, leader
// elected) is SIGKILLed while a rollout waits between waves; no node moves
// while it is gone, and a new operator process resumes at the same wave once
// it holds the lease, never rolling back the nodes already updated, until
// every node runs the new release.
func TestOperatorKilledMidRollout(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	if err := e.StopOperator(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.StartOperator(ctx) }) // the environment's own, for the tests after
	first := startOperatorProcess(t, e)
	// The waves need a boundary between the nodes. Buckets come from the
	// node names and the program's uid: a uid that puts every node in one
	// bucket (about 1 in 10^4 with 3 nodes) is replaced by a new object,
	// a bounded number of times, never skipped.
	var p *v1.BpfProgram
	var waves []int32
	for attempt := 1; ; attempt++ {
		var err error
		if p, err = e.FilterProgram("operator-killed"); err != nil {
			t.Fatal(err)
		}
		p.Spec.Bundle.Image = v1Ref
		p.Spec.NodeSelector = nil
		create(t, e, p)
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		if waves = wavesAcross(e.Nodes, p.UID); len(waves) >= 2 {
			break
		}
		remove(t, e, p)
		if attempt == 10 {
			t.Fatalf("%d uids in a row put every node in one rollout bucket: the bucket hash does not spread", attempt)
		}
	}
	removeLater(t, e, p)
	if _, err := e.WaitReady(ctx, p.Name, int32(len(e.Nodes)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
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
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
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
	first.kill()
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

	second := startOperatorProcess(t, e)
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
		t.Fatalf("rollout did not complete after the operator restarted: %v\nnew operator's log:\n%s", err, second.log)
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
	report(t, "operator SIGKILLed mid-rollout", "waves %v; killed at wave %d (%d node(s) on v2) for %s: nothing moved; new operator took the lease and resumed, all %d nodes on v2 %s after its start",
		waves, stopped.Wave, count(firstWave), restarted.Sub(stoppedAt).Round(time.Second), len(e.Nodes), time.Since(restarted).Round(100*time.Millisecond))
	// While the new operator runs: agents detach a deleted program when the
	// operator deletes its BpfProgramTarget.
	remove(t, e, p)
}

// wavesAcross returns cumulative wave percentages with one wave per
// distinct rollout bucket of nodes for uid, the first holding the lowest
// bucket and the last ending at 100: fewer than two when every node shares
// a bucket.
func wavesAcross(nodes []*localenv.Node, uid types.UID) []int32 {
	var distinct []int32
	for _, n := range nodes {
		distinct = append(distinct, rollout.Bucket(n.Name, uid))
	}
	sort.Slice(distinct, func(i, j int) bool { return distinct[i] < distinct[j] })
	var waves []int32
	for _, b := range distinct {
		if len(waves) == 0 || waves[len(waves)-1] <= b {
			waves = append(waves, b+1)
		}
	}
	waves[len(waves)-1] = 100
	return waves
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
