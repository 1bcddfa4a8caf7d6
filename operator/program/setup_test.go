package program

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func names(reqs []reconcile.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return out
}

func TestNodeStateMapsToTheProgramsItReports(t *testing.T) {
	s := &v1alpha1.BpfNodeState{Status: v1alpha1.BpfNodeStateStatus{Programs: []v1alpha1.ProgramState{
		{BpfProgram: "a", UID: "uid-a", Program: "x"},
		{BpfProgram: "a", UID: "uid-a", Program: "y"},
		{BpfProgram: "b", UID: "uid-b", Program: "x"},
	}}}
	r := &Reconciler{}
	if got := names(r.nodeStatePrograms(t.Context(), s)); fmt.Sprint(got) != "[a b]" {
		t.Errorf("mapped to %v, want [a b]", got)
	}
	if got := NodeStateProgramUIDs(s); fmt.Sprint(got) != "[uid-a uid-b]" {
		t.Errorf("indexed under %v, want [uid-a uid-b]", got)
	}
	if got := NodeStateProgramUIDs(&v1alpha1.BpfNodeState{}); len(got) != 0 {
		t.Errorf("empty state indexed under %v", got)
	}
}

func TestNodeEventsWakeOnlySelectingPrograms(t *testing.T) {
	sel := func(name string, match map[string]string) v1alpha1.BpfProgram {
		p := v1alpha1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if match != nil {
			p.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: match}
		}
		return p
	}
	programs := []v1alpha1.BpfProgram{
		sel("everywhere", nil),
		sel("edge", map[string]string{"role": "edge"}),
		sel("core", map[string]string{"role": "core"}),
	}
	tests := []struct {
		name string
		// sets are the node's label sets (old and new on an update).
		sets []labels.Set
		want string
	}{
		{name: "edge node", sets: []labels.Set{{"role": "edge"}}, want: "[edge everywhere]"},
		{name: "relabelled edge to core", sets: []labels.Set{{"role": "edge"}, {"role": "core"}}, want: "[core edge everywhere]"},
		{name: "unlabelled node", sets: []labels.Set{{}}, want: "[everywhere]"},
	}
	for _, tt := range tests {
		if got := names(selecting(programs, tt.sets...)); fmt.Sprint(got) != tt.want {
			t.Errorf("%s: woke %v, want %s", tt.name, got, tt.want)
		}
	}

	ready := func(status corev1.ConditionStatus, beat time.Time) []corev1.NodeCondition {
		return []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, LastHeartbeatTime: metav1.NewTime(beat)}}
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"role": "edge"}, ResourceVersion: "1"}}
	node.Status.Conditions = ready(corev1.ConditionTrue, time.Now().Add(-time.Minute))
	now := metav1.Now()
	changes := []struct {
		name   string
		change func(*corev1.Node)
		// want: the update must wake the programs selecting the node.
		want bool
	}{
		// Every heartbeat of 5,000 nodes would otherwise wake programs.
		{name: "status heartbeat", change: func(n *corev1.Node) { n.Status.Conditions = ready(corev1.ConditionTrue, time.Now()) }},
		{name: "label change", change: func(n *corev1.Node) { n.Labels["role"] = "core" }, want: true},
		{name: "deletion starts", change: func(n *corev1.Node) { n.DeletionTimestamp = &now }, want: true},
		{name: "becomes not ready", change: func(n *corev1.Node) { n.Status.Conditions = ready(corev1.ConditionFalse, time.Now()) }, want: true},
		{name: "stops reporting", change: func(n *corev1.Node) { n.Status.Conditions = ready(corev1.ConditionUnknown, time.Now()) }, want: true},
	}
	for _, tt := range changes {
		updated := node.DeepCopy()
		updated.ResourceVersion = "2"
		tt.change(updated)
		if got := nodeChanged(node, updated); got != tt.want {
			t.Errorf("%s: nodeChanged = %t, want %t", tt.name, got, tt.want)
		}
	}
}
