package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
)

// Desired is one BpfProgram the node must run, as the reconciler decides
// it: the API's spec and the pods of this node it selects. The dataplane
// gets it parsed (Parsed); it reads no API types.
type Desired struct {
	// Name is the BpfProgram's name.
	Name string
	// UID is the BpfProgram's uid.
	UID types.UID
	// Generation is the BpfProgram's generation.
	Generation int64
	// Digest is the bundle digest to run.
	Digest string
	// Bundle is the verified bundle of Digest; nil keeps what runs.
	Bundle dataplane.Bundle
	// Signer is recorded in status.
	Signer string
	// Spec holds the programs with their attach blocks, constants and map
	// entries.
	Spec v1alpha1.BpfProgramSpec
	// Pods are the pods of this node each pod-targeted attach block selects
	// now, by program name (resolvePods).
	Pods map[string][]attach.PodScope
	// Hold, when set, keeps what runs (see dataplane.Desired.Hold).
	Hold error
}

// Parsed is d as the dataplane takes it: attach blocks parsed into hooks
// (with their pods), constants and map entries in the loader's types.
func (d *Desired) Parsed() dataplane.Desired {
	return dataplane.Desired{
		Name: d.Name, UID: d.UID, Generation: d.Generation, Digest: d.Digest,
		Bundle: d.Bundle, Signer: d.Signer, Hold: d.Hold,
		Spec: hookspec.Spec(d.Spec, d.Pods),
	}
}

// RunsKey is dataplane.Desired.RunsKey of d: equal keys run the same.
func (d *Desired) RunsKey() string {
	p := d.Parsed()
	return p.RunsKey()
}

// Kernel is the Dataplane of a real node: it hands *dataplane.Dataplane
// the desired set parsed, and copies what it reports into the API's types.
type Kernel struct {
	DP *dataplane.Dataplane
}

var _ Dataplane = Kernel{}

// Apply parses desired and applies it.
func (k Kernel) Apply(ctx context.Context, desired []Desired) []v1alpha1.ProgramState {
	parsed := make([]dataplane.Desired, 0, len(desired))
	for i := range desired {
		parsed = append(parsed, desired[i].Parsed())
	}
	return apiStates(k.DP.Apply(ctx, parsed))
}

// Snapshot returns the dataplane's states in the API's types.
func (k Kernel) Snapshot() []v1alpha1.ProgramState { return apiStates(k.DP.Snapshot()) }

// Changes is the dataplane's interface-change signal.
func (k Kernel) Changes() <-chan struct{} { return k.DP.Changes() }

// Kernel identifies the running kernel.
func (k Kernel) Kernel() v1alpha1.KernelInfo {
	ki := k.DP.Kernel()
	return v1alpha1.KernelInfo{Release: ki.Release, Architecture: ki.Architecture, BTF: ki.BTF, BootID: ki.BootID}
}

// Features lists the probed kernel capabilities.
func (k Kernel) Features() []v1alpha1.Feature {
	fs := k.DP.Features()
	if fs == nil {
		return nil
	}
	out := make([]v1alpha1.Feature, 0, len(fs))
	for _, f := range fs {
		out = append(out, v1alpha1.Feature{Name: f.Name, Supported: f.Supported})
	}
	return out
}

// TakeBPFFSRemounts passes on the dataplane's count (reportRemounts).
func (k Kernel) TakeBPFFSRemounts() int { return k.DP.TakeBPFFSRemounts() }

// apiStates copies the dataplane's rows into the API's ProgramState; the
// dataplane's states and reasons are the API's words (TestDataplaneWords).
func apiStates(states []dataplane.ProgramState) []v1alpha1.ProgramState {
	if states == nil {
		return nil
	}
	out := make([]v1alpha1.ProgramState, 0, len(states))
	for i := range states {
		out = append(out, apiState(&states[i]))
	}
	return out
}

func apiState(s *dataplane.ProgramState) v1alpha1.ProgramState {
	st := v1alpha1.ProgramState{
		BpfProgram:    s.BpfProgram,
		UID:           s.UID,
		Generation:    s.Generation,
		Digest:        s.Digest,
		Program:       s.Program,
		AttachPoint:   s.AttachPoint,
		State:         v1alpha1.ProgramPhase(s.State),
		Reason:        s.Reason,
		Message:       s.Message,
		Signer:        s.Signer,
		ID:            s.ID,
		Tag:           s.Tag,
		Type:          s.Type,
		Name:          s.Name,
		LoadedAt:      s.LoadedAt,
		BytesXlated:   s.BytesXlated,
		BytesJited:    s.BytesJited,
		BytesMemlock:  s.BytesMemlock,
		VerifiedInsns: s.VerifiedInsns,
		MapIDs:        s.MapIDs,
		BTFID:         s.BTFID,
		LinkID:        s.LinkID,
		RunCount:      s.RunCount,
		RunTimeNs:     s.RunTimeNs,
		NsPerRun:      s.NsPerRun,
	}
	if s.Pods != nil {
		st.Pods = &v1alpha1.PodAttachCounts{Attached: s.Pods.Attached, Failed: s.Pods.Failed, Pending: s.Pods.Pending, RecentFailures: s.Pods.RecentFailures}
	}
	return st
}
