// Package v1alpha1 holds the bpfleet.io/v1alpha1 API: BpfProgram (what to run
// where), BpfNodeState (what one node runs) and BundleTrustPolicy (who may sign
// what runs).
//
// +kubebuilder:object:generate=true
// +groupName=bpfleet.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every bpfleet kind.
	GroupVersion = schema.GroupVersion{Group: "bpfleet.io", Version: "v1alpha1"}

	// SchemeBuilder registers the bpfleet kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the bpfleet kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
