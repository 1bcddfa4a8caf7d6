package rollout_test

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// An agent learns the digest its node must run from the BpfProgram alone.
func ExampleDigestForNode() {
	p := &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "xdp-filter", UID: "6f1c3a52-8d0e-4b7a-9c1d-2e3f4a5b6c7d"},
		Spec: v1alpha1.BpfProgramSpec{
			Rollout: v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutWaves, Waves: []int32{10, 50, 100}},
		},
		Status: v1alpha1.BpfProgramStatus{Rollout: &v1alpha1.RolloutStatus{
			TargetDigest: "sha256:new", StableDigest: "sha256:old", Wave: 1,
		}},
	}
	for _, node := range []string{"node-a", "node-b", "node-d", "node-e"} {
		wave := rollout.NodeWave(p, node)
		fmt.Printf("%s: wave %d runs %s\n", node, wave, rollout.DigestForNode(p, node))
	}
	// Output:
	// node-a: wave 1 runs sha256:new
	// node-b: wave 1 runs sha256:new
	// node-d: wave 2 runs sha256:old
	// node-e: wave 2 runs sha256:old
}

// A kernel release on which the target failed keeps the stable digest on
// every node of it, while the other releases follow the waves.
func ExampleDigestForNodeKernel() {
	p := &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "exec-trace", UID: "6f1c3a52-8d0e-4b7a-9c1d-2e3f4a5b6c7d"},
		Status: v1alpha1.BpfProgramStatus{Rollout: &v1alpha1.RolloutStatus{
			TargetDigest: "sha256:new", StableDigest: "sha256:old",
			PausedKernels: []v1alpha1.PausedKernel{{Release: "5.10.0-28-amd64", Node: "node-c", Reason: "exec_trace: LoadFailed: ..."}},
		}},
	}
	fmt.Println(rollout.DigestForNodeKernel(p, "node-a", "6.1.0-18-amd64"))
	fmt.Println(rollout.DigestForNodeKernel(p, "node-b", "5.10.0-28-amd64"))
	// Output:
	// sha256:new
	// sha256:old
}
