package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrustedKey is one cosign public key.
// +kubebuilder:validation:XValidation:rule="has(self.publicKey) != has(self.secretRef)",message="set exactly one of publicKey and secretRef"
type TrustedKey struct {
	// Name identifies the key in status and in BpfProgram.status.signer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// PublicKey is the PEM-encoded public key (cosign.pub).
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	PublicKey string `json:"publicKey,omitempty"`
	// SecretRef names a Secret key holding the PEM public key.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
}

// SecretKeyRef names one key of a Secret.
type SecretKeyRef struct {
	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data; default cosign.pub.
	// +optional
	// +kubebuilder:default=cosign.pub
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// BundleTrustPolicySpec says whose signatures admit which bundles.
// +kubebuilder:validation:XValidation:rule="self.allowUnsigned || (has(self.keys) && size(self.keys) > 0)",message="set keys, or allowUnsigned: true"
// +kubebuilder:validation:XValidation:rule="!has(self.allowUnsigned) || !self.allowUnsigned || self.images.all(i, !i.matches('^[^/]*[*?[]'))",message="allowUnsigned needs a literal registry host in every image glob: no *, ? or [ before the first /"
type BundleTrustPolicySpec struct {
	// Images are the bundle references this policy covers, as globs over
	// registry/repository (e.g. registry.example.com/ebpf/*). A bundle no
	// policy covers is refused.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	Images []string `json:"images"`

	// Keys are the cosign public keys; a bundle is admitted when one of them
	// signed its manifest digest.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Keys []TrustedKey `json:"keys,omitempty"`

	// AllowUnsigned admits bundles without a signature. For development
	// only: it is reported loudly in status and events. It never overrides
	// another covering policy: every policy covering a bundle must admit
	// it, so once any covering policy names keys, a signature that fails
	// them is refused. With keys of its own, the policy admits a bundle
	// signed by one of them or carrying no signature at all, never one
	// whose signatures fail its keys. Refused with a wildcard registry
	// host (e.g. "**", "*/**").
	// +optional
	AllowUnsigned bool `json:"allowUnsigned,omitempty"`

	// AllowedProgramTypes, when set, limits the program types a covered bundle
	// may load (e.g. xdp, tracepoint); others are refused before any kernel call.
	// Every covering policy's list applies (intersection).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	AllowedProgramTypes []string `json:"allowedProgramTypes,omitempty"`

	// AllowedAttachTypes, when set, limits the hooks the programs of a
	// covered bundle may be attached to, as BpfPrograms name them: the
	// attach block (xdp, tracepoint, uprobe, netfilter, ...), followed
	// for tc by the direction and for cgroup by its attachType (tc/ingress,
	// tc/egress, cgroup/ingress, cgroup/device, ...); tc/* and cgroup/*
	// allow every hook of the kind. A program type alone cannot tell
	// cgroup hooks apart (cgroup_sock_addr serves connect4 and sendmsg6
	// alike). Every covering policy's list applies (intersection); the
	// operator and every agent check it. The API server refuses a name
	// that no attach kind gives.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	AllowedAttachTypes AttachTypeNames `json:"allowedAttachTypes,omitempty"`

	// NamespaceSelector makes this a policy for application teams: it
	// covers the BpfPodPrograms of the namespaces it selects (empty selects
	// every namespace), and no cluster-scoped BpfProgram. A policy without
	// it covers BpfPrograms only. A BpfPodProgram whose bundle no
	// namespace policy covers is refused, so a namespace may use only the
	// images, signers and program and attach types that its policies allow.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || (has(e.values) && size(e.values) > 0))",message="matchExpressions with operator In or NotIn need values"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || size(e.values) == 0)",message="matchExpressions with operator Exists or DoesNotExist must not have values"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// BundleTrustPolicyStatus reports what the operator found in the policy.
type BundleTrustPolicyStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// KeyCount is how many keys parsed.
	// +optional
	KeyCount int32 `json:"keyCount,omitempty"`
	// KeyFingerprints are the SHA-256 fingerprints of the keys, by name.
	// +optional
	// +listType=atomic
	KeyFingerprints []string `json:"keyFingerprints,omitempty"`
	// CoveredPrograms is how many BpfPrograms this policy covers.
	// +optional
	CoveredPrograms int32 `json:"coveredPrograms,omitempty"`
	// Conditions: Ready (keys parse), UnsignedAllowed (warning).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BundleTrustPolicy admits bundles signed by given cosign keys.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=btp,categories=bpfleet
// +kubebuilder:printcolumn:name="Images",type=string,JSONPath=`.spec.images`
// +kubebuilder:printcolumn:name="Keys",type=integer,JSONPath=`.status.keyCount`
// +kubebuilder:printcolumn:name="Allow-Unsigned",type=boolean,JSONPath=`.spec.allowUnsigned`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BundleTrustPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says whose signatures admit which bundles.
	Spec BundleTrustPolicySpec `json:"spec"`
	// Status reports what the operator found.
	// +optional
	Status BundleTrustPolicyStatus `json:"status,omitempty"`
}

// BundleTrustPolicyList is a list of BundleTrustPolicies.
// +kubebuilder:object:root=true
type BundleTrustPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BundleTrustPolicy `json:"items"`
}
