package rollout_test

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func TestBucketIsStableAndSpread(t *testing.T) {
	uid := types.UID("5b1c1d9e-0000-4000-8000-000000000001")
	if a, b := rollout.Bucket("node-1", uid), rollout.Bucket("node-1", uid); a != b {
		t.Fatalf("same input gave %d and %d", a, b)
	}
	// 1000 nodes must land in every quartile, and not all in one bucket.
	var quartiles [4]int
	seen := map[int32]bool{}
	for i := range 1000 {
		b := rollout.Bucket(fmt.Sprintf("node-%d", i), uid)
		if b < 0 || b >= rollout.Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
		quartiles[b/25]++
		seen[b] = true
	}
	for q, n := range quartiles {
		if n < 150 || n > 350 {
			t.Errorf("quartile %d holds %d of 1000 nodes, want about 250", q, n)
		}
	}
	if len(seen) < 90 {
		t.Errorf("only %d distinct buckets of 100 used", len(seen))
	}
	// The uid changes the assignment: another program's first wave is on other nodes.
	differ := 0
	for i := range 100 {
		n := fmt.Sprintf("node-%d", i)
		if rollout.Bucket(n, uid) != rollout.Bucket(n, "another-uid") {
			differ++
		}
	}
	if differ < 80 {
		t.Errorf("only %d of 100 nodes changed bucket with another uid", differ)
	}
}

func TestWaveOf(t *testing.T) {
	tests := []struct {
		bucket int32
		waves  []int32
		// want is the wave index.
		want int32
	}{
		{bucket: 0, waves: nil, want: 0},
		{bucket: 99, waves: nil, want: 0},
		{bucket: 0, waves: []int32{10, 50, 100}, want: 0},
		{bucket: 9, waves: []int32{10, 50, 100}, want: 0},
		{bucket: 10, waves: []int32{10, 50, 100}, want: 1},
		{bucket: 49, waves: []int32{10, 50, 100}, want: 1},
		{bucket: 50, waves: []int32{10, 50, 100}, want: 2},
		{bucket: 99, waves: []int32{10, 50, 100}, want: 2},
		{bucket: 0, waves: []int32{1, 100}, want: 0},
		{bucket: 1, waves: []int32{1, 100}, want: 1},
		{bucket: 99, waves: []int32{100}, want: 0},
		// Waves not ending at 100 (refused by validation): last wave.
		{bucket: 80, waves: []int32{10, 50}, want: 1},
	}
	for _, tt := range tests {
		if got := rollout.WaveOf(tt.bucket, tt.waves); got != tt.want {
			t.Errorf("WaveOf(%d, %v) = %d, want %d", tt.bucket, tt.waves, got, tt.want)
		}
	}
}

const (
	oldDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	newDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// nodesByWave finds, for program uid and waves, one node name in each wave.
func nodesByWave(t *testing.T, uid types.UID, waves []int32) []string {
	t.Helper()
	names := make([]string, len(waves))
	found := 0
	for i := 0; found < len(waves) && i < 10000; i++ {
		n := fmt.Sprintf("node-%d", i)
		w := rollout.WaveOf(rollout.Bucket(n, uid), waves)
		if names[w] == "" {
			names[w] = n
			found++
		}
	}
	if found != len(waves) {
		t.Fatalf("no node found for every wave of %v", waves)
	}
	return names
}

func TestDigestForNode(t *testing.T) {
	waves := []int32{10, 50, 100}
	uid := types.UID("uid-1")
	byWave := nodesByWave(t, uid, waves)
	verified := []metav1.Condition{{Type: v1alpha1.ConditionSignatureVerified, Status: metav1.ConditionTrue}}

	tests := []struct {
		name     string
		strategy v1alpha1.RolloutStrategy
		rollout  *v1alpha1.RolloutStatus
		// want is the digest expected for the node of each wave (index = wave).
		want [3]string
	}{
		{
			name: "nothing verified yet",
			want: [3]string{"", "", ""},
		},
		{
			name:     "steady state",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: oldDigest, StableDigest: oldDigest, Wave: 2},
			want:     [3]string{oldDigest, oldDigest, oldDigest},
		},
		{
			name:     "first rollout, wave 0: only wave 0 runs anything",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest},
			want:     [3]string{newDigest, "", ""},
		},
		{
			name:     "update, wave 1",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest, Wave: 1},
			want:     [3]string{newDigest, newDigest, oldDigest},
		},
		{
			name:     "update halted and rolled back",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest, Wave: 1, HaltedReason: "3 nodes failed"},
			want:     [3]string{oldDigest, oldDigest, oldDigest},
		},
		{
			name:     "first rollout halted: nothing runs",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, HaltedReason: "failed"},
			want:     [3]string{"", "", ""},
		},
		{
			name:     "AllAtOnce moves every node at once",
			strategy: v1alpha1.RolloutAllAtOnce,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest},
			want:     [3]string{newDigest, newDigest, newDigest},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1alpha1.BpfProgram{
				ObjectMeta: metav1.ObjectMeta{UID: uid},
				Spec:       v1alpha1.BpfProgramSpec{Rollout: v1alpha1.RolloutSpec{Strategy: tt.strategy, Waves: waves}},
				Status:     v1alpha1.BpfProgramStatus{Rollout: tt.rollout, Conditions: verified},
			}
			for w, node := range byWave {
				if got := rollout.DigestForNode(p, node); got != tt.want[w] {
					t.Errorf("node %s (wave %d) runs %q, want %q", node, w, got, tt.want[w])
				}
			}
		})
	}
}

func TestDigestForNodeKernel(t *testing.T) {
	waves := []int32{10, 50, 100}
	uid := types.UID("uid-1")
	byWave := nodesByWave(t, uid, waves)
	paused := []v1alpha1.PausedKernel{{Release: "5.15.0-old", Node: "node-x", Reason: "prog: LoadFailed: bad field"}}

	tests := []struct {
		name     string
		strategy v1alpha1.RolloutStrategy
		rollout  *v1alpha1.RolloutStatus
		// release is the kernel release of every node asked about.
		release string
		// want is the digest expected for the node of each wave (index = wave).
		want [3]string
	}{
		{
			name:     "paused release keeps stable in every wave, even waves already moved",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest, Wave: 1, PausedKernels: paused},
			release:  "5.15.0-old",
			want:     [3]string{oldDigest, oldDigest, oldDigest},
		},
		{
			name:     "other release follows the waves",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest, Wave: 1, PausedKernels: paused},
			release:  "6.18.0",
			want:     [3]string{newDigest, newDigest, oldDigest},
		},
		{
			name:     "unknown release is never paused",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest, Wave: 1, PausedKernels: paused},
			release:  "",
			want:     [3]string{newDigest, newDigest, oldDigest},
		},
		{
			name:     "paused release on a first rollout runs nothing",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, Wave: 2, PausedKernels: paused},
			release:  "5.15.0-old",
			want:     [3]string{"", "", ""},
		},
		{
			name:     "AllAtOnce: the paused release stays on stable",
			strategy: v1alpha1.RolloutAllAtOnce,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest, PausedKernels: paused},
			release:  "5.15.0-old",
			want:     [3]string{oldDigest, oldDigest, oldDigest},
		},
		{
			name:     "halted rollout: stable everywhere, as DigestForNode",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: oldDigest, Wave: 1, HaltedReason: "failed", PausedKernels: paused},
			release:  "6.18.0",
			want:     [3]string{oldDigest, oldDigest, oldDigest},
		},
		{
			name:     "completed rollout (target == stable) ignores stale pauses",
			strategy: v1alpha1.RolloutWaves,
			rollout:  &v1alpha1.RolloutStatus{TargetDigest: newDigest, StableDigest: newDigest, Wave: 2, PausedKernels: paused},
			release:  "5.15.0-old",
			want:     [3]string{newDigest, newDigest, newDigest},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1alpha1.BpfProgram{
				ObjectMeta: metav1.ObjectMeta{UID: uid},
				Spec:       v1alpha1.BpfProgramSpec{Rollout: v1alpha1.RolloutSpec{Strategy: tt.strategy, Waves: waves}},
				Status:     v1alpha1.BpfProgramStatus{Rollout: tt.rollout},
			}
			for w, node := range byWave {
				if got := rollout.DigestForNodeKernel(p, node, tt.release); got != tt.want[w] {
					t.Errorf("node %s (wave %d, kernel %q) runs %q, want %q", node, w, tt.release, got, tt.want[w])
				}
			}
		})
	}
}
