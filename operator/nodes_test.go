package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/operator"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

func TestNodeDeletedCollectsItsState(t *testing.T) {
	startOperator(t)
	names, _ := readyFleet(t, "gc", 2)

	if err := env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: names[1]}}); err != nil {
		t.Fatal(err)
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		err := env.Client.Get(context.Background(), client.ObjectKey{Name: names[1]}, &v1.BpfNodeState{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("node state of the deleted node: %v", err)
		}
		return nil
	})
	envtest.Eventually(t, 30*time.Second, func() error {
		if n := get(t, "gc").Status.Nodes; n != (v1.NodeCounts{Selected: 1, Attached: 1, Summary: "1/1"}) {
			return fmt.Errorf("nodes %+v", n)
		}
		return nil
	})
	// The state of the node that stays is kept.
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: names[0]}, &v1.BpfNodeState{}); err != nil {
		t.Fatalf("node state of a live node: %v", err)
	}
}

// A node whose kubelet stops reporting (Ready Unknown) counts as pending,
// whatever its BpfNodeState last said, and as attached again once Ready.
func TestNotReadyNodeCountsPending(t *testing.T) {
	startOperator(t)
	names, _ := readyFleet(t, "notready", 2)
	setNodeReady(t, names[1], corev1.ConditionUnknown)
	p := waitCondition(t, "notready", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonNodesPending)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 2, Attached: 1, Pending: 1, Summary: "1/2"}) {
		t.Errorf("nodes %+v with one node not ready", p.Status.Nodes)
	}
	setNodeReady(t, names[1], corev1.ConditionTrue)
	p = waitCondition(t, "notready", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 2, Attached: 2, Summary: "2/2"}) {
		t.Errorf("nodes %+v once ready again", p.Status.Nodes)
	}
}

func TestTrimNode(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", UID: "u", ResourceVersion: "7", Labels: map[string]string{"a": "b"},
			Annotations: map[string]string{"big": strings.Repeat("x", 4096)}, Finalizers: []string{"f"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
				{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", LastHeartbeatTime: metav1.Now()}},
			Images: []corev1.ContainerImage{{Names: []string{"registry/image:tag"}, SizeBytes: 1 << 30}},
		},
	}
	got, err := operator.TrimNode(n)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := got.(*corev1.Node)
	if trimmed.Name != "n" || trimmed.UID != "u" || trimmed.ResourceVersion != "7" || trimmed.Labels["a"] != "b" || len(trimmed.Finalizers) != 1 {
		t.Errorf("metadata lost: %+v", trimmed.ObjectMeta)
	}
	if trimmed.Annotations != nil || trimmed.ManagedFields != nil || trimmed.Status.Images != nil {
		t.Errorf("kept what no reconciler reads: %+v", trimmed)
	}
	if len(trimmed.Status.Conditions) != 1 || trimmed.Status.Conditions[0].Type != corev1.NodeReady ||
		trimmed.Status.Conditions[0].Status != corev1.ConditionFalse || !trimmed.Status.Conditions[0].LastHeartbeatTime.IsZero() {
		t.Errorf("conditions %+v, want Ready=False alone without its heartbeat", trimmed.Status.Conditions)
	}
	if other, _ := operator.TrimNode("tombstone"); other != "tombstone" {
		t.Errorf("a non-Node changed: %v", other)
	}
}
