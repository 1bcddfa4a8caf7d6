// Package v1alpha1 holds the bpfleet.io/v1alpha1 API: BpfProgram (what to run
// where), BpfNodeState (what one node runs) and BundleTrustPolicy (who may sign
// what runs).
//
// +kubebuilder:object:generate=true
// +groupName=bpfleet.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every bpfleet kind.
	GroupVersion = schema.GroupVersion{Group: "bpfleet.io", Version: "v1alpha1"}

	// SchemeBuilder registers the bpfleet kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the bpfleet kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&BpfProgram{}, &BpfProgramList{},
		&BpfProgramTarget{}, &BpfProgramTargetList{},
		&BpfPodProgram{}, &BpfPodProgramList{},
		&BpfNodeState{}, &BpfNodeStateList{},
		&BundleTrustPolicy{}, &BundleTrustPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
