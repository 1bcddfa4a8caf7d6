package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// simulatedDataplane is a fake for scale simulation: it reports what a
// node with many matching interfaces would, without a kernel.
type simulatedDataplane struct{}

func (simulatedDataplane) Apply(context.Context, []controller.Desired) []v1alpha1.ProgramState {
	return nil
}
func (simulatedDataplane) Snapshot() []v1alpha1.ProgramState { return nil }
func (simulatedDataplane) Changes() <-chan struct{}          { return nil }
func (simulatedDataplane) Kernel() v1alpha1.KernelInfo {
	return v1alpha1.KernelInfo{Release: "6.18.0", BTF: true}
}
func (simulatedDataplane) Features() []v1alpha1.Feature { return nil }

// vethRows simulates a glob like veth* matching n interfaces for two
// programs of one BpfProgram, every row as full as the agent writes them.
func vethRows(n int) []v1alpha1.ProgramState {
	var rows []v1alpha1.ProgramState
	for _, prog := range []string{"xdp_pod_filter", "tc_counter"} {
		for i := range n {
			rows = append(rows, v1alpha1.ProgramState{
				BpfProgram: "veth-glob", UID: "uid-veth-glob", Generation: 3, Program: prog,
				Digest: "sha256:" + strings.Repeat("ab", 32), AttachPoint: fmt.Sprintf("xdp/veth%08x", i),
				State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached, Signer: "SHA256:" + strings.Repeat("k", 43) + " (policy prod)",
				ID: 77, Tag: "cd713971a8011680", Type: "xdp", Name: prog, BytesXlated: 4096, BytesJited: 2200,
				BytesMemlock: 8192, VerifiedInsns: 1200, MapIDs: []uint32{1, 2, 3, 4}, BTFID: 9, LinkID: uint32(1000 + i),
			})
		}
	}
	return rows
}

// TestStatusRowsAreCapped: a node where a glob matches 2,000 veths (4,000
// attach points) writes at most MaxProgramRows rows, one per program, says
// so in its summary and condition, and the real API server takes the
// object; an uncapped status is refused by the CRD, and the folded status
// is stable (an idle node does not rewrite it).
func TestStatusRowsAreCapped(t *testing.T) {
	ctx := context.Background()
	r := &controller.Reconciler{NodeName: "rows-node", Dataplane: simulatedDataplane{}}
	states := vethRows(2000)
	st := r.NodeStatus(v1alpha1.BpfNodeStateStatus{}, states, nil, false)
	if len(st.Programs) > v1alpha1.MaxProgramRows {
		t.Fatalf("%d rows for %d attach points, want at most %d", len(st.Programs), len(states), v1alpha1.MaxProgramRows)
	}
	if len(st.Programs) != 2 || st.Summary.FoldedAttachPoints != int32(len(states)-2) {
		t.Errorf("%d rows, %d folded; want one row per program, %d folded", len(st.Programs), st.Summary.FoldedAttachPoints, len(states)-2)
	}
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionProgramsFolded)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonTooManyAttachPoints {
		t.Errorf("condition %s = %+v, want True/%s", v1alpha1.ConditionProgramsFolded, c, v1alpha1.ReasonTooManyAttachPoints)
	}
	if again := r.NodeStatus(st, states, nil, false); !controller.StatusEqual(st, again, false) {
		t.Errorf("the folded status changes between two identical reconciles:\n%+v\n%+v", st.Programs, again.Programs)
	}

	state := &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "rows-node"}}
	if err := env.Client.Create(ctx, state); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, state) })
	state.Status = st
	if err := env.Client.Status().Update(ctx, state); err != nil {
		t.Fatalf("write the capped status: %v", err)
	}
	// At the cap, rows as full as they get still fit an etcd object.
	full := r.NodeStatus(v1alpha1.BpfNodeStateStatus{}, vethRows(v1alpha1.MaxProgramRows/2), nil, false)
	for i := range full.Programs {
		full.Programs[i].Message = strings.Repeat("m", 2048)
	}
	state.Status = full
	if err := env.Client.Status().Update(ctx, state); err != nil {
		t.Fatalf("write %d full rows: %v", len(full.Programs), err)
	}
	if b, _ := json.Marshal(state); len(b) > 1<<20 {
		t.Errorf("a full capped status is %d bytes, want under 1 MiB", len(b))
	}
	// Uncapped, as an agent before the cap wrote it: refused, with the bound.
	state.Status.Programs = vethRows(150)
	err := env.Client.Status().Update(ctx, state)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "256") {
		t.Errorf("an uncapped status (300 rows): want Invalid naming the bound, got %v", err)
	}
}
