package controller

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

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

// remounting is a Dataplane that reports bpffs remounts once.
type remounting struct {
	Dataplane
	n int
}

func (r *remounting) TakeBPFFSRemounts() int { n := r.n; r.n = 0; return n }

func TestReportRemounts(t *testing.T) {
	tests := []struct {
		// remounts the dataplane reports.
		remounts int
		// wantEvent: one Warning BPFFSRemounted Event.
		wantEvent bool
	}{
		{remounts: 0},
		{remounts: 1, wantEvent: true},
		{remounts: 3, wantEvent: true},
	}
	for _, tt := range tests {
		rec := events.NewFakeRecorder(4)
		dp := &remounting{n: tt.remounts}
		r := &Reconciler{NodeName: "n1", Dataplane: dp, Recorder: rec}
		r.reportRemounts(context.Background())
		r.reportRemounts(context.Background()) // reported once
		var got []string
		for len(rec.Events) > 0 {
			got = append(got, <-rec.Events)
		}
		if want := map[bool]int{true: 1, false: 0}[tt.wantEvent]; len(got) != want {
			t.Fatalf("%d remounts: events %q, want %d", tt.remounts, got, want)
		}
		if tt.wantEvent && !strings.HasPrefix(got[0], "Warning "+v1alpha1.ReasonBPFFSRemounted) {
			t.Errorf("event %q, want a Warning %s", got[0], v1alpha1.ReasonBPFFSRemounted)
		}
	}
}
