package controller_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// TestMissingTargetKeepsWhatRuns: a program that runs here and still exists
// but has no BpfProgramTarget (an operator of a release before targets,
// while the agents are upgraded first) keeps running, held with
// WaitingForTarget, on the same kernel program, still filtering; once the
// BpfProgram itself is being deleted the node detaches it.
func TestMissingTargetKeepsWhatRuns(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ref, v1 := w.push(t, "v1", "0.1.0", true)
	// The BpfProgram's deletion below wakes no agent (agents watch targets
	// only): the periodic resync is what finds it gone.
	w.startAgent(t, func(o *controller.Options) { o.ResyncInterval = time.Second })
	p := w.createProgram(t, ref, v1, denyEntry(deniedPort))
	before := w.waitEntry(t, p, "program attached", attachedAt(v1))

	target := &v1alpha1.BpfProgramTarget{ObjectMeta: metav1.ObjectMeta{Name: p.Name}}
	if err := env.Client.Delete(ctx, target); err != nil {
		t.Fatalf("delete the target as an older operator would never write it: %v", err)
	}
	held := w.waitEntry(t, p, "held waiting for a target", func(s v1alpha1.ProgramState) bool {
		return s.Reason == v1alpha1.ReasonWaitingForTarget
	})
	if held.State != v1alpha1.PhaseAttached || held.ID != before.ID {
		t.Errorf("entry without a target: %s id %d, want Attached with id %d kept", held.State, held.ID, before.ID)
	}
	if got := w.delivered(t, deniedPort, 20); got != 0 {
		t.Errorf("%d of 20 datagrams to the denied port arrived while the target was missing", got)
	}

	// Deleted while a finalizer (as the operator's) holds it: being
	// deleted is enough, as when an admin removes a program while no
	// operator runs (docs/operations.md).
	const hold = "test.bpfleet.io/hold"
	patch := client.MergeFrom(p.DeepCopy())
	p.Finalizers = append(p.Finalizers, hold)
	if err := env.Client.Patch(ctx, p, patch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var cur v1alpha1.BpfProgram
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), &cur); err == nil {
			patch := client.MergeFrom(cur.DeepCopy())
			cur.Finalizers = slices.DeleteFunc(cur.Finalizers, func(f string) bool { return f == hold })
			_ = env.Client.Patch(ctx, &cur, patch)
		}
	})
	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "program detached once the BpfProgram is being deleted", func() (bool, string) {
		left := w.bpffsLeft(t)
		return len(left) == 0 && len(entriesOf(w.state(t), p.UID)) == 0, fmt.Sprint(left)
	})
	if got := w.delivered(t, deniedPort, 20); got != 20 {
		t.Errorf("%d of 20 datagrams to the denied port arrived after the program was deleted", got)
	}
}
