package dataplane_test

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
)

// apiDesired is one BpfProgram written as the agent's controller holds it,
// with the API's spec and the pods resolved for it; parsed turns it into
// the dataplane's Desired the way the controller does (hookspec.Spec).
type apiDesired struct {
	Name       string
	UID        types.UID
	Generation int64
	Digest     string
	Bundle     dataplane.Bundle
	Signer     string
	Spec       v1alpha1.BpfProgramSpec
	Pods       map[string][]attach.PodScope
	Hold       error
}

// parsed is the dataplane's desired set of ds.
func parsed(ds ...apiDesired) []dataplane.Desired {
	out := make([]dataplane.Desired, 0, len(ds))
	for _, d := range ds {
		out = append(out, dataplane.Desired{
			Name: d.Name, UID: d.UID, Generation: d.Generation, Digest: d.Digest,
			Bundle: d.Bundle, Signer: d.Signer, Spec: hookspec.Spec(d.Spec, d.Pods), Hold: d.Hold,
		})
	}
	return out
}
