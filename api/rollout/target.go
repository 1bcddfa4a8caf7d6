package rollout

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TargetOf is the BpfProgramTarget spec of p: what agents read of it. It
// leaves out every field that changes with progress only (node counts,
// conditions, rollout.updatedNodes, failedNodes, waveStartedAt), so that
// the target changes only when what some node must run changes. A first
// rollout that already reaches every node is written as complete
// (firstRolloutEverywhere).
func TargetOf(p *v1alpha1.BpfProgram) v1alpha1.BpfProgramTargetSpec {
	t := v1alpha1.BpfProgramTargetSpec{
		ProgramUID:        p.UID,
		ProgramGeneration: p.Generation,
		ProgramCreated:    p.CreationTimestamp,
		Program:           *p.Spec.DeepCopy(),
		ResolvedDigest:    p.Status.ResolvedDigest,
	}
	if r := p.Status.Rollout; r != nil {
		t.Rollout = &v1alpha1.RolloutStatus{
			TargetDigest:  r.TargetDigest,
			StableDigest:  r.StableDigest,
			Wave:          r.Wave,
			HaltedReason:  r.HaltedReason,
			PausedKernels: append([]v1alpha1.PausedKernel(nil), r.PausedKernels...),
		}
		if firstRolloutEverywhere(p, t.Rollout) {
			// Every node runs the target already, as it will once the
			// operator records the rollout complete: say so now, and the
			// completion is no second write to every agent.
			t.Rollout.StableDigest = t.Rollout.TargetDigest
		}
	}
	return t
}

// firstRolloutEverywhere tells whether r is a first rollout (no stable
// digest) in its last wave (every node, AllAtOnce) with no halt and no
// paused kernel: DigestForNodeKernel gives every node the target, on every
// kernel, exactly as it does once the rollout is complete.
func firstRolloutEverywhere(p *v1alpha1.BpfProgram, r *v1alpha1.RolloutStatus) bool {
	return r.StableDigest == "" && r.TargetDigest != "" && r.HaltedReason == "" &&
		len(r.PausedKernels) == 0 && r.Wave >= int32(len(Waves(p)))-1
}

// ProgramOf is the BpfProgram an agent works on, rebuilt from its target:
// name, uid, generation, creation time, spec, resolved digest and rollout,
// which is all DigestForNodeKernel and the agent read. The rest of the
// status is empty.
func ProgramOf(t *v1alpha1.BpfProgramTarget) v1alpha1.BpfProgram {
	s := t.Spec.DeepCopy()
	return v1alpha1.BpfProgram{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "BpfProgram"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              t.Name,
			UID:               s.ProgramUID,
			Generation:        s.ProgramGeneration,
			CreationTimestamp: s.ProgramCreated,
		},
		Spec:   s.Program,
		Status: v1alpha1.BpfProgramStatus{ResolvedDigest: s.ResolvedDigest, Rollout: s.Rollout},
	}
}
