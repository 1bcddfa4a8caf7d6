// Package hookspec turns the API's attach blocks into the agent's hooks.
// It is the one place of the node agent that reads an attach block of
// v1alpha1: the dataplane parses each BpfProgram's blocks here once, when
// the controller hands it the desired set, and from then on works with
// attach.Hook only.
package hookspec

import (
	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
)

// Parse returns the hook of one attach block; an error wrapping
// attach.ErrNoAttachBlock when it sets no block or more than one.
func Parse(a v1alpha1.ProgramAttachment) (attach.Hook, error) { return hooks.Parse(a) }

// Set is the hooks of a spec's programs, by program name, and the error of
// each block that did not parse.
type Set struct {
	Hooks map[string]attach.Hook
	Errs  map[string]error
}

// ParseAll parses every attach block of programs; a block that targets
// pods attaches in pods[program name], the pods the agent resolved for it.
func ParseAll(programs []v1alpha1.ProgramAttachment, pods map[string][]attach.PodScope) Set {
	s := Set{Hooks: map[string]attach.Hook{}, Errs: map[string]error{}}
	for _, pa := range programs {
		h, err := Parse(pa)
		if err != nil {
			s.Errs[pa.Name] = err
			continue
		}
		if p := attach.PodsOf(h); p != nil && p.InPods {
			p.Scopes = pods[pa.Name]
		}
		s.Hooks[pa.Name] = h
	}
	return s
}
