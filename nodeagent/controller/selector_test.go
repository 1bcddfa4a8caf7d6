package controller_test

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestInvalidSelectorKeepsWhatRuns: a BpfProgram whose nodeSelector became
// unreadable stays attached and filtering on the node, held with reason
// InvalidNodeSelector, and follows the selector again once it is fixed. The
// agent used to leave such a program out of the desired set, which detached
// it on every node of the fleet.
func TestInvalidSelectorKeepsWhatRuns(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ref, v1 := w.push(t, "v1", "0.1.0", true)
	w.startAgent(t)
	p := w.createProgram(t, ref, v1, denyEntry(deniedPort))
	first := w.waitEntry(t, p, "program attached", attachedAt(v1))

	env.WithoutRules(t, "bpfprograms.bpfleet.io", "spec.nodeSelector")
	valid := p.Spec.NodeSelector.DeepCopy()
	bogus := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: nodeLabel, Operator: "Bogus"}}}
	eventually(t, 10*time.Second, "API server takes the bogus selector", func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return false, err.Error()
		}
		p.Spec.NodeSelector = bogus
		if err := env.Client.Update(ctx, p); err != nil {
			return false, err.Error()
		}
		return true, ""
	})

	held := w.waitEntry(t, p, "entry held with InvalidNodeSelector", func(s v1alpha1.ProgramState) bool {
		return s.Reason == v1alpha1.ReasonInvalidNodeSelector
	})
	if held.State != v1alpha1.PhaseAttached || held.ID != first.ID || held.Digest != v1 {
		t.Errorf("held entry = %s id %d %s, want Attached id %d %s", held.State, held.ID, held.Digest, first.ID, v1)
	}
	if c := meta.FindStatusCondition(w.state(t).Status.Conditions, v1alpha1.ConditionReady); c == nil ||
		c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalidNodeSelector {
		t.Errorf("Ready = %+v, want False with reason %s", c, v1alpha1.ReasonInvalidNodeSelector)
	}
	if got := w.delivered(t, deniedPort, 20); got != 0 {
		t.Errorf("%d of 20 datagrams to the denied port arrived: the program no longer filters", got)
	}

	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.NodeSelector = valid
	if err := env.Client.Update(ctx, p); err != nil {
		t.Fatalf("fix the selector: %v", err)
	}
	if again := w.waitEntry(t, p, "attached again without a hold", attachedAt(v1)); again.ID != first.ID {
		t.Errorf("program reloaded (id %d, was %d); a fixed selector should change nothing on the node", again.ID, first.ID)
	}
}
