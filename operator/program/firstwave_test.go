package program

import (
	"testing"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestFirstWaveStartsAtOnce: a new program's first decision already hands
// its digest to the nodes of the first wave (every node with AllAtOnce, and
// the only node of a one-node fleet whatever its wave), with nothing to wait
// for: no requeue, no pause before the first wave.
func TestFirstWaveStartsAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name     string
		strategy v1alpha1.RolloutStrategy
		nodes    []string
	}{
		{"all at once, one node", v1alpha1.RolloutAllAtOnce, []string{"node-1"}},
		{"waves, one node", v1alpha1.RolloutWaves, []string{"node-1"}},
		{"all at once, three nodes", v1alpha1.RolloutAllAtOnce, []string{"node-1", "node-2", "node-3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testProgram(tt.strategy, nil)
			var views []NodeView
			for _, n := range tt.nodes {
				views = append(views, NodeView{Name: n})
			}
			d := DecideRollout(RolloutInput{Now: t0, Program: p, Verified: dNew, Nodes: views})
			if d.Rollout == nil || d.Rollout.TargetDigest != dNew {
				t.Fatalf("rollout = %+v, want target %s", d.Rollout, dNew)
			}
			if d.RequeueAfter != 0 {
				t.Errorf("RequeueAfter = %v, want 0 (nothing to wait for)", d.RequeueAfter)
			}
			p.Status.Rollout = d.Rollout
			for _, n := range tt.nodes {
				if got := rollout.DigestForNode(p, n); got != dNew {
					t.Errorf("digest for %s = %q, want %s at once", n, got, dNew)
				}
			}
		})
	}
}
