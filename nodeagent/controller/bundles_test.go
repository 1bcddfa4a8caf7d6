package controller_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// TestStatusSharesBundleVerification: programs of one bundle admitted by
// one signer, verified seconds apart (added one after the other), report
// one verification time, the earliest, so their rows share one
// status.bundles entry; another signer keeps its own; a later status of the
// same node keeps the time once the earliest program is gone.
func TestStatusSharesBundleVerification(t *testing.T) {
	r := &controller.Reconciler{NodeName: "bundles-node", Dataplane: simulatedDataplane{}}
	t0 := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	var states []v1alpha1.ProgramState
	verified := map[types.UID]time.Time{}
	for i := range 5 {
		uid := types.UID(fmt.Sprintf("uid-%d", i))
		signer := "prod/key SHA256:0123456789abcdef"
		if i == 4 {
			signer = "team/key SHA256:fedcba9876543210"
		}
		states = append(states, v1alpha1.ProgramState{
			BpfProgram: fmt.Sprintf("p%d", i), UID: uid, Program: "exec_trace", Digest: "sha256:aa", Signer: signer,
			AttachPoint: "tracepoint/sched/sched_process_exec", State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached,
		})
		verified[uid] = t0.Add(time.Duration(3-i) * time.Second) // p3 first, p0 last
	}
	st := r.NodeStatus(v1alpha1.BpfNodeStateStatus{}, states, verified, false)
	for _, p := range st.Programs {
		want := t0
		if p.BpfProgram == "p4" {
			want = t0.Add(-time.Second)
		}
		if p.VerifiedAt == nil || !p.VerifiedAt.Time.Equal(want) {
			t.Errorf("%s verified at %v, want %v", p.BpfProgram, p.VerifiedAt, want)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		Bundles []v1alpha1.BundleEntry `json:"bundles"`
	}
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored.Bundles) != 2 {
		t.Errorf("5 rows of one bundle under 2 signers store %d bundles entries, want 2: %+v", len(stored.Bundles), stored.Bundles)
	}
	// p3 (verified first) goes; the others keep the time they reported.
	rest := append(append([]v1alpha1.ProgramState(nil), states[:3]...), states[4])
	again := r.NodeStatus(st, rest, verified, false)
	for _, p := range again.Programs {
		if p.BpfProgram != "p4" && !p.VerifiedAt.Time.Equal(t0) {
			t.Errorf("%s moved to %v after p3 went, want %v", p.BpfProgram, p.VerifiedAt, t0)
		}
	}
}
