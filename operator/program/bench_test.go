package program

import (
	"fmt"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// fleetOf returns n nodes, each reporting both programs attached at digest.
func fleetOf(n int, digest string) []NodeView {
	nodes := make([]NodeView, n)
	for i := range nodes {
		name := fmt.Sprintf("node-%05d", i)
		nodes[i] = NodeView{Name: name, State: report(name, "6.18", digest, v1alpha1.PhaseAttached)}
	}
	return nodes
}

// BenchmarkDecide5000 measures one reconcile's decisions (rollout step,
// summary, readiness) for 5,000 selected nodes mid-rollout.
func BenchmarkDecide5000(b *testing.B) {
	nodes := fleetOf(5000, dNew)
	p := testProgram(v1alpha1.RolloutWaves, &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1})
	b.ReportAllocs()
	for b.Loop() {
		d := DecideRollout(RolloutInput{Now: t0, Program: p, Verified: dNew, Nodes: nodes})
		q := p.DeepCopy()
		q.Status.Rollout = d.Rollout
		s := Summarize(SummaryInput{Program: q, Nodes: nodes})
		DecideReady(ReadyInput{Rollout: d.Rollout, Summary: s})
	}
}

func TestDecideScalesTo5000Nodes(t *testing.T) {
	nodes := fleetOf(5000, dNew)
	p := testProgram(v1alpha1.RolloutWaves, &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 2})
	d := DecideRollout(RolloutInput{Now: t0, Program: p, Verified: dNew, Nodes: nodes})
	if d.Rollout.StableDigest != dNew || d.Rollout.UpdatedNodes != 5000 {
		t.Fatalf("rollout %+v, want complete with 5000 nodes updated", d.Rollout)
	}
	p.Status.Rollout = d.Rollout
	if s := Summarize(SummaryInput{Program: p, Nodes: nodes}); s.Counts.Summary != "5000/5000" {
		t.Fatalf("summary %+v", s.Counts)
	}
}
