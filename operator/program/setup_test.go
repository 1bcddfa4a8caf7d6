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

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"role": "edge"}, ResourceVersion: "1"}}
	heartbeat := node.DeepCopy()
	heartbeat.ResourceVersion = "2"
	heartbeat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, LastHeartbeatTime: metav1.NewTime(time.Now())}}
	if nodeChanged(node, heartbeat) {
		t.Error("a status heartbeat counts as a change: every heartbeat of 5,000 nodes would wake programs")
	}
	relabel := node.DeepCopy()
	relabel.Labels["role"] = "core"
	if !nodeChanged(node, relabel) {
		t.Error("a label change is not seen")
	}
	deleting := node.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	if !nodeChanged(node, deleting) {
		t.Error("the start of a deletion is not seen")
	}
}
