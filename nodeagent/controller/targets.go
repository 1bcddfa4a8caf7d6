package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
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
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfprograms,verbs=get

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

// programsWithoutTarget returns the BpfPrograms that something on the node
// (snapshot) comes from, that have no target among programs, and that still
// exist with the same uid and no deletion timestamp, read past the cache
// with r.Programs. The node keeps those running (errWaitingForTarget)
// instead of detaching them: an operator that writes no targets yet (one
// of a release before them, while the agents are upgraded first) must not
// make every node detach everything. A program that is gone, being deleted
// or replaced by another of its name is left out, and the node detaches
// it. A failed read is returned: nothing is detached on a guess. Only the
// rare case pays a read: a program deleted (one read per node), or targets
// missing.
func (r *Reconciler) programsWithoutTarget(ctx context.Context, programs []v1alpha1.BpfProgram, snapshot []v1alpha1.ProgramState) ([]v1alpha1.BpfProgram, error) {
	if r.Programs == nil {
		return nil, nil
	}
	targeted := make(map[types.UID]bool, len(programs))
	for i := range programs {
		targeted[programs[i].UID] = true
	}
	var out []v1alpha1.BpfProgram
	seen := map[types.UID]bool{}
	for _, s := range snapshot {
		if targeted[s.UID] || seen[s.UID] || s.BpfProgram == "" {
			continue
		}
		seen[s.UID] = true
		var p v1alpha1.BpfProgram
		err := r.Programs.Get(ctx, client.ObjectKey{Name: s.BpfProgram}, &p)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("read BpfProgram %s, which runs here without a target: %w", s.BpfProgram, err)
		case p.UID != s.UID || !p.DeletionTimestamp.IsZero():
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
