package v1alpha1

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodSelector picks pods running on each selected node.
type PodSelector struct {
	// Selector picks pods by label; empty selects every pod. A BpfPodProgram
	// only ever selects pods of its own namespace.
	Selector LabelSelector `json:"selector"`

	// NamespaceSelector picks the namespaces whose pods Selector may match;
	// absent selects every namespace. Only a cluster-scoped BpfProgram may
	// set it.
	// +optional
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
}

// LabelSelector is a metav1.LabelSelector with bounded sizes and the
// operators enumerated, so the API server refuses a malformed one from its
// schema alone (CEL over an unbounded selector inside the programs list
// would exceed the rule cost budget).
type LabelSelector struct {
	// MatchLabels are key=value pairs every selected object carries.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// MatchExpressions are requirements every selected object meets.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one requirement of a LabelSelector.
// +kubebuilder:validation:XValidation:rule="self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",message="In and NotIn need values; Exists and DoesNotExist take none"
type LabelSelectorRequirement struct {
	// Key is the label key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	Key string `json:"key"`
	// Operator is In, NotIn, Exists or DoesNotExist.
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator metav1.LabelSelectorOperator `json:"operator"`
	// Values for In and NotIn.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:items:MaxLength=63
	Values []string `json:"values,omitempty"`
}

// Selector returns s as a metav1.LabelSelector, for
// metav1.LabelSelectorAsSelector.
func (s *LabelSelector) Selector() *metav1.LabelSelector {
	out := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: r.Key, Operator: r.Operator, Values: r.Values})
	}
	return out
}

// ContainerSelector picks containers of selected pods.
type ContainerSelector struct {
	// Pods picks the pods.
	Pods PodSelector `json:"pods"`
	// Names are the containers' names in the pod spec; empty selects every
	// container of the pod.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=63
	Names []string `json:"names,omitempty"`
}

// Tenant names the BpfPodProgram a BpfProgram was made for.
type Tenant struct {
	// Namespace is the BpfPodProgram's namespace: every pod target of the
	// program is confined to it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name is the BpfPodProgram's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
}

// The pod filter a tracing bundle declares (bpf/include/bpfleet_pods.h):
// for a tracepoint or rawTracepoint block with pods, the agent sets
// PodFilterConstant to 1 before load and keeps PodFilterMap (a hash of u64
// cgroup id to u8) holding the cgroup ids of the selected pods' containers
// on the node, so the programs see only those pods' events, filtered in
// the kernel. Names with ReservedPrefix are the agent's: specs may not set
// them.
const (
	PodFilterMap      = "bpfleet_pods"
	PodFilterConstant = "bpfleet_filter_pods"
	ReservedPrefix    = "bpfleet_"
)

// PodTargets returns the pod selector of an attachment, or nil when it
// attaches to the node itself.
func (a *ProgramAttachment) PodTargets() *PodSelector {
	switch {
	case a.XDP != nil:
		return a.XDP.Pods
	case a.TC != nil:
		return a.TC.Pods
	case a.Cgroup != nil:
		return a.Cgroup.Pods
	case a.Tracepoint != nil:
		return a.Tracepoint.Pods
	case a.RawTracepoint != nil:
		return a.RawTracepoint.Pods
	case a.Uprobe != nil && a.Uprobe.Containers != nil:
		return &a.Uprobe.Containers.Pods
	}
	return nil
}

// TenantViolations lists why spec may not run for a tenant (a
// BpfPodProgram): each program must target pods of the tenant's own
// namespace and nothing of the node, and the spec must not name a tenant
// itself. The API server refuses the same through the BpfPodProgram CRD's
// CEL rules; the operator and every agent check again, so an object written
// around admission is refused too.
func TenantViolations(spec *BpfProgramSpec) []string {
	var out []string
	for _, c := range spec.Constants {
		if strings.HasPrefix(c.Name, ReservedPrefix) {
			out = append(out, fmt.Sprintf("constant %s: names starting with %s are the agent's", c.Name, ReservedPrefix))
		}
	}
	for _, e := range spec.MapEntries {
		if strings.HasPrefix(e.Map, ReservedPrefix) {
			out = append(out, fmt.Sprintf("map entry of %s: maps starting with %s are the agent's", e.Map, ReservedPrefix))
		}
	}
	for i := range spec.Programs {
		p := &spec.Programs[i]
		pods := p.PodTargets()
		switch {
		case pods == nil:
			out = append(out, fmt.Sprintf("program %s: a BpfPodProgram may only attach to pods (xdp/tc/cgroup/tracepoint/rawTracepoint pods, uprobe containers)", p.Name))
		case pods.NamespaceSelector != nil:
			out = append(out, fmt.Sprintf("program %s: a BpfPodProgram may not select other namespaces (namespaceSelector)", p.Name))
		}
	}
	return out
}

// BpfPodProgram is the namespaced kind for application teams: the same
// spec as a BpfProgram, confined to pods of its own namespace. The operator
// keeps one BpfProgram for it (named NAMESPACE.NAME, spec.tenant set) and
// copies that program's status back here.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=bpfpp,categories=bpfleet
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="name must be at most 63 characters"
// +kubebuilder:printcolumn:name="Types",type=string,JSONPath=`.status.attachTypes`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.bundle.image`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.shortDigest`
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodes.summary`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
type BpfPodProgram struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what should run in which pods.
	// +kubebuilder:validation:XValidation:rule="!has(self.tenant)",message="spec.tenant is set by the operator, not on a BpfPodProgram"
	// +kubebuilder:validation:XValidation:rule="self.programs.all(p, (has(p.xdp) && has(p.xdp.pods) && !has(p.xdp.pods.namespaceSelector)) || (has(p.tc) && has(p.tc.pods) && !has(p.tc.pods.namespaceSelector)) || (has(p.cgroup) && has(p.cgroup.pods) && !has(p.cgroup.pods.namespaceSelector)) || (has(p.tracepoint) && has(p.tracepoint.pods) && !has(p.tracepoint.pods.namespaceSelector)) || (has(p.rawTracepoint) && has(p.rawTracepoint.pods) && !has(p.rawTracepoint.pods.namespaceSelector)) || (has(p.uprobe) && has(p.uprobe.containers) && !has(p.uprobe.containers.pods.namespaceSelector)))",message="a BpfPodProgram may only attach to pods of its own namespace: every program needs pods (uprobe: containers) and no namespaceSelector"
	Spec BpfProgramSpec `json:"spec"`
	// Status is the status of the operator's BpfProgram for this object,
	// plus the Accepted condition.
	// +optional
	Status BpfProgramStatus `json:"status,omitempty"`
}

// BpfPodProgramList is a list of BpfPodPrograms.
// +kubebuilder:object:root=true
type BpfPodProgramList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BpfPodProgram `json:"items"`
}
