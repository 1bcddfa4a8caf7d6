package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// BpfProgramTargetSpec is what a node agent needs of one BpfProgram: its
// identity, its spec and the digest each node must run. The operator writes
// it only when one of these changes, never for progress (node counts,
// conditions), so that agents are not woken by the BpfProgram's status
// patches.
type BpfProgramTargetSpec struct {
	// ProgramUID is the BpfProgram's uid.
	ProgramUID types.UID `json:"programUID"`
	// ProgramGeneration is the BpfProgram's generation; nodes report it.
	ProgramGeneration int64 `json:"programGeneration"`
	// ProgramCreated is the BpfProgram's creationTimestamp.
	ProgramCreated metav1.Time `json:"programCreated"`
	// Program is the BpfProgram's spec, as the BpfProgram admitted it: not
	// validated again here (a spec an older CRD admitted must still reach
	// the agents, which report what they cannot run).
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Program BpfProgramSpec `json:"program"`
	// ResolvedDigest is the BpfProgram's status.resolvedDigest.
	// +optional
	ResolvedDigest string `json:"resolvedDigest,omitempty"`
	// Rollout is the BpfProgram's status.rollout without its progress
	// (updatedNodes, failedNodes, waveStartedAt).
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// BpfProgramTarget is written by the operator only: the part of a
// BpfProgram that node agents read, under the BpfProgram's name, owned by
// it. Agents watch these, not BpfPrograms.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bpft
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.rollout.targetDigest`,priority=1
// +kubebuilder:printcolumn:name="Wave",type=integer,JSONPath=`.spec.rollout.wave`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BpfProgramTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what agents read.
	Spec BpfProgramTargetSpec `json:"spec"`
}

// BpfProgramTargetList is a list of BpfProgramTargets.
// +kubebuilder:object:root=true
type BpfProgramTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BpfProgramTarget `json:"items"`
}
