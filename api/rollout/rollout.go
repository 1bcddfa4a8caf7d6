// Package rollout holds the rollout decisions shared by the operator and every
// node agent: which wave a node belongs to and which bundle digest it must run
// now. Everything here is pure: no I/O, no clock, no listing of nodes. Each
// agent computes its own answer from its node name and the BpfProgram alone.
//
// The operator writes status.rollout only with digests that a trust policy
// admitted (SignatureVerified=True when they were written), so a node never
// runs an unverified digest, and a later bundle that fails verification leaves
// status.rollout, and therefore what runs, unchanged.
package rollout

import (
	"hash/fnv"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Buckets is the number of buckets nodes hash into; wave percentages are
// expressed against it.
const Buckets = 100

// Bucket returns a stable number in [0, Buckets) for a node and a BpfProgram.
// Mixing in the program's uid spreads first waves of different programs over
// different nodes.
func Bucket(nodeName string, uid types.UID) int32 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(nodeName))
	return int32(h.Sum64() % Buckets)
}

// WaveOf returns the index of the first wave whose cumulative percentage
// exceeds bucket: with waves [10, 50, 100], buckets 0-9 are wave 0, 10-49
// wave 1 and 50-99 wave 2. No waves (AllAtOnce) is wave 0. A bucket beyond
// the last percentage (waves not ending at 100, which validation refuses)
// belongs to the last wave.
func WaveOf(bucket int32, waves []int32) int32 {
	for i, pct := range waves {
		if bucket < pct {
			return int32(i)
		}
	}
	if len(waves) == 0 {
		return 0
	}
	return int32(len(waves) - 1)
}

// Waves returns the wave percentages the program's strategy uses: its
// spec.rollout.waves for Waves, none (a single wave) for AllAtOnce.
func Waves(p *v1alpha1.BpfProgram) []int32 {
	if p.Spec.Rollout.Strategy != v1alpha1.RolloutWaves {
		return nil
	}
	return p.Spec.Rollout.Waves
}

// NodeWave returns the wave of nodeName for p.
func NodeWave(p *v1alpha1.BpfProgram, nodeName string) int32 {
	return WaveOf(Bucket(nodeName, p.UID), Waves(p))
}

// InProgress tells whether status.rollout is moving nodes to a new digest:
// a target differs from the stable digest and no halt was recorded.
func InProgress(r *v1alpha1.RolloutStatus) bool {
	return r != nil && r.TargetDigest != "" && r.TargetDigest != r.StableDigest && r.HaltedReason == ""
}

// Paused tells whether release is one of status.rollout.pausedKernels: the
// target digest failed on a node of that release during this rollout. An
// empty release (a node that has not reported its kernel) is never paused.
func Paused(r *v1alpha1.RolloutStatus, release string) bool {
	if r == nil || release == "" {
		return false
	}
	for _, k := range r.PausedKernels {
		if k.Release == release {
			return true
		}
	}
	return false
}

// DigestForNodeKernel is DigestForNode for a node whose kernel release is
// known: while a rollout is in progress, a node of a paused kernel release
// runs stableDigest whatever its wave. That includes nodes of the release
// that already run the target (the one that failed, and any that attached
// it before the pause was recorded): they roll back to stable too, so one
// release never runs two digests and what the fleet learned holds for every
// node of that release. Nodes of other releases, and nodes whose release is
// "" (not reported yet), follow DigestForNode.
func DigestForNodeKernel(p *v1alpha1.BpfProgram, nodeName, release string) string {
	r := p.Status.Rollout
	if InProgress(r) && Paused(r, release) {
		return r.StableDigest
	}
	return DigestForNode(p, nodeName)
}

// DigestForNode returns the bundle digest nodeName must run now for p, or ""
// when it must run nothing yet.
//
//   - Nothing was verified yet (no status.rollout target): "".
//   - A halted rollout rolled back: every node runs stableDigest ("" on a
//     first rollout, so nothing runs).
//   - No rollout in progress (target == stable, or AllAtOnce): targetDigest,
//     which is the verified status.resolvedDigest once the rollout completed.
//   - A rollout in progress: nodes whose wave is at most status.rollout.wave
//     run targetDigest, the others stableDigest ("" on a first rollout).
//
// A new digest that fails verification never reaches status.rollout, so the
// answer stays what it was: what runs keeps running. DigestForNode ignores
// status.rollout.pausedKernels; agents, which know their kernel release, use
// DigestForNodeKernel.
func DigestForNode(p *v1alpha1.BpfProgram, nodeName string) string {
	r := p.Status.Rollout
	if r == nil || r.TargetDigest == "" {
		return ""
	}
	if r.HaltedReason != "" {
		return r.StableDigest
	}
	if !InProgress(r) {
		return r.TargetDigest
	}
	if NodeWave(p, nodeName) <= r.Wave {
		return r.TargetDigest
	}
	return r.StableDigest
}
