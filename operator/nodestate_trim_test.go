package operator_test

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/operator"
)

// TestTrimNodeState: the operator's cache keeps of a BpfNodeState what the
// rollout and the counts read, and drops what only users read.
func TestTrimNodeState(t *testing.T) {
	now := metav1.Now()
	decided := v1.ProgramState{BpfProgram: "p", UID: "u1", Generation: 3, Digest: "sha256:aa", Program: "xdp_filter",
		AttachPoint: "xdp/eth0", Pods: &v1.PodAttachCounts{Attached: 2}, State: v1.PhaseFailed,
		Reason: v1.ReasonVerifierRejected, Message: "R1 invalid mem access"}
	full := decided
	full.Signer, full.VerifiedAt = "key release", &now
	full.ID, full.Tag, full.Type, full.Name, full.LoadedAt = 41, "ab12", "xdp", "xdp_filter", &now
	full.BytesXlated, full.BytesJited, full.BytesMemlock, full.VerifiedInsns = 100, 200, 4096, 13000
	full.MapIDs, full.BTFID, full.LinkID = []uint32{1, 2}, 9, 7
	full.RunCount, full.RunTimeNs, full.NsPerRun = 1000, 15000, 15
	s := &v1.BpfNodeState{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "n1", ResourceVersion: "12", Labels: map[string]string{"a": "b"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "bpfleet-agent"}}},
	}
	s.Status.Kernel = v1.KernelInfo{Release: "6.18.0", BTF: true}
	s.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}}
	s.Status.Programs = []v1.ProgramState{full}
	s.Status.StatsAt = &metav1.MicroTime{Time: now.Time}

	got, err := operator.TrimNodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := got.(*v1.BpfNodeState)
	if trimmed.Name != "node-1" || trimmed.UID != "n1" || trimmed.ResourceVersion != "12" || trimmed.Labels["a"] != "b" {
		t.Errorf("metadata lost: %+v", trimmed.ObjectMeta)
	}
	if trimmed.ManagedFields != nil || trimmed.Status.Conditions != nil || trimmed.Status.StatsAt != nil {
		t.Errorf("kept what the operator does not read: %+v", trimmed)
	}
	if trimmed.Status.Kernel != s.Status.Kernel {
		t.Errorf("kernel %+v, want %+v", trimmed.Status.Kernel, s.Status.Kernel)
	}
	if len(trimmed.Status.Programs) != 1 || !reflect.DeepEqual(trimmed.Status.Programs[0], decided) {
		t.Errorf("rows %+v, want %+v", trimmed.Status.Programs, decided)
	}
	if s.Status.Programs[0].RunCount != 1000 {
		t.Error("the transform changed its input")
	}
	if other, _ := operator.TrimNodeState("tombstone"); other != "tombstone" {
		t.Errorf("a non-BpfNodeState changed: %v", other)
	}
}
