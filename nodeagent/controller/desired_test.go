package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// kernelOnly is a Dataplane that only reports a kernel; digestFor needs
// nothing else.
type kernelOnly struct {
	Dataplane
	release string
}

func (k kernelOnly) Kernel() v1alpha1.KernelInfo { return v1alpha1.KernelInfo{Release: k.release} }

func TestDigestForUsesTheNodeKernel(t *testing.T) {
	const (
		stable = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		target = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	)
	p := &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-1"},
		Status: v1alpha1.BpfProgramStatus{Rollout: &v1alpha1.RolloutStatus{
			TargetDigest: target, StableDigest: stable,
			PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15.0-old", Node: "n9", Reason: "x: LoadFailed"}},
		}},
	}
	tests := []struct {
		// release is the node's own kernel release.
		release string
		// want is the digest the node must run (AllAtOnce: everyone's wave).
		want string
	}{
		{release: "5.15.0-old", want: stable},
		{release: "6.18.0", want: target},
		{release: "", want: target},
	}
	for _, tt := range tests {
		r := &Reconciler{NodeName: "n1", Dataplane: kernelOnly{release: tt.release}}
		if got := r.digestFor(p); got != tt.want {
			t.Errorf("kernel %q: digestFor = %s, want %s", tt.release, got, tt.want)
		}
	}
}
