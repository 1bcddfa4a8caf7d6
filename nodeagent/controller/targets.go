package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// The agent reads BpfProgramTargets, not BpfPrograms: a target holds what
// the agent needs of its BpfProgram (uid, generation, spec, resolved digest
// and rollout) and the operator writes it only when that changes, so the
// BpfProgram's progress-only status patches wake no agent. The rest of the
// agent works on the BpfProgram each target stands for (rollout.ProgramOf).
// A BpfProgram without a target is not known yet or is being deleted: the
// node runs none of it.
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfprogramtargets,verbs=get;list;watch

// listPrograms returns the BpfPrograms the targets c holds stand for.
func listPrograms(ctx context.Context, c client.Reader) ([]v1alpha1.BpfProgram, error) {
	var targets v1alpha1.BpfProgramTargetList
	if err := c.List(ctx, &targets); err != nil {
		return nil, err
	}
	programs := make([]v1alpha1.BpfProgram, len(targets.Items))
	for i := range targets.Items {
		programs[i] = rollout.ProgramOf(&targets.Items[i])
	}
	return programs, nil
}

// getProgram returns the BpfProgram named name as its target describes it.
func getProgram(ctx context.Context, c client.Reader, name string) (*v1alpha1.BpfProgram, error) {
	var t v1alpha1.BpfProgramTarget
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &t); err != nil {
		return nil, err
	}
	p := rollout.ProgramOf(&t)
	return &p, nil
}
