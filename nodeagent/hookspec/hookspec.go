// Package hookspec turns the API's attach blocks into the agent's hooks.
// It is the one place of the node agent that reads an attach block of
// v1alpha1: the controller parses each BpfProgram's spec here once, before
// it hands the desired set to the dataplane, which works with attach.Hook
// and knows no API types.
package hookspec

import (
	"encoding/json"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// Parse returns the hook of one attach block; an error wrapping
// attach.ErrNoAttachBlock when it sets no block or more than one.
func Parse(a v1alpha1.ProgramAttachment) (attach.Hook, error) { return hooks.Parse(a) }

// Spec is the dataplane's view of spec: every program with the hook of its
// attach block (or the error that block gave), its constants and map
// entries. A block that targets pods attaches in pods[program name], the
// pods the agent resolved for it.
func Spec(spec v1alpha1.BpfProgramSpec, pods map[string][]attach.PodScope) dataplane.Spec {
	out := dataplane.Spec{Key: key(spec)}
	for _, pa := range spec.Programs {
		h, err := Parse(pa)
		if err == nil {
			if p := attach.PodsOf(h); p != nil && p.InPods {
				p.Scopes = pods[pa.Name]
			}
		} else {
			h = nil
		}
		out.Programs = append(out.Programs, dataplane.Program{Name: pa.Name, Hook: h, Err: err})
	}
	if spec.Constants != nil {
		out.Constants = make([]loader.Constant, 0, len(spec.Constants))
	}
	for _, c := range spec.Constants {
		out.Constants = append(out.Constants, loader.Constant{Name: c.Name, Value: c.Value})
	}
	if spec.MapEntries != nil {
		out.MapEntries = make([]loader.MapEntry, 0, len(spec.MapEntries))
	}
	for _, e := range spec.MapEntries {
		out.MapEntries = append(out.MapEntries, loader.MapEntry{Map: e.Map, Key: e.Key, Value: e.Value, Encoding: loader.Encoding(e.Encoding)})
	}
	return out
}

// key identifies what spec says of the kernel: its programs and attach
// blocks, constants and map entries (not its bundle image, node selector
// or rollout), for dataplane.Desired.RunsKey.
func key(spec v1alpha1.BpfProgramSpec) string {
	b, err := json.Marshal(struct {
		Programs   []v1alpha1.ProgramAttachment
		Constants  []v1alpha1.Constant
		MapEntries []v1alpha1.MapEntry
	}{spec.Programs, spec.Constants, spec.MapEntries})
	if err != nil {
		return "" // cannot happen for API types; equal to no real key
	}
	return string(b)
}
