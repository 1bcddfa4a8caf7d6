// Package hookspec turns the API's attach blocks into the agent's hooks.
// It is the one place of the node agent that reads an attach block of
// v1alpha1: the dataplane parses each BpfProgram's blocks here once, when
// the controller hands it the desired set, and from then on works with
// attach.Hook only.
package hookspec

import (
	"fmt"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

// Parse returns the hook of one attach block; an error wrapping
// attach.ErrNoAttachBlock when it sets no block or more than one.
func Parse(a v1alpha1.ProgramAttachment) (attach.Hook, error) {
	if len(hooks.Kinds(a)) != 1 {
		return nil, fmt.Errorf("program %s: %w", a.Name, attach.ErrNoAttachBlock)
	}
	n := attach.Named{Name: a.Name}
	switch {
	case a.XDP != nil:
		return &attach.XDP{Named: n, Interfaces: selector(a.XDP.Interfaces), Generic: a.XDP.Mode == v1alpha1.XDPModeGeneric,
			Pods: attach.Pods{InPods: a.XDP.Pods != nil}}, nil
	case a.TC != nil:
		return &attach.TCX{Named: n, Interfaces: selector(a.TC.Interfaces), Egress: a.TC.Direction == v1alpha1.TCEgress,
			First: a.TC.Order == v1alpha1.TCOrderFirst, Pods: attach.Pods{InPods: a.TC.Pods != nil}}, nil
	case a.Tracepoint != nil:
		return &attach.Tracepoint{Named: n, Group: a.Tracepoint.Group, Tracepoint: a.Tracepoint.Name}, nil
	case a.RawTracepoint != nil:
		return &attach.RawTracepoint{Named: n, Tracepoint: a.RawTracepoint.Name}, nil
	case a.Fentry != nil:
		return &attach.Fentry{Named: n, Function: a.Fentry.Function}, nil
	case a.Fexit != nil:
		return &attach.Fentry{Named: n, Function: a.Fexit.Function, Exit: true}, nil
	case a.Kprobe != nil:
		return &attach.Kprobe{Named: n, Function: a.Kprobe.Function, Return: a.Kprobe.Return}, nil
	case a.Uprobe != nil:
		u := a.Uprobe
		h := &attach.Uprobe{Named: n, Path: u.Path, Symbol: u.Symbol, Offset: u.Offset, PID: u.PID, Return: u.Return}
		if u.Containers != nil {
			h.Pods.InPods, h.Containers = true, u.Containers.Names
		}
		return h, nil
	case a.Cgroup != nil:
		return &attach.Cgroup{Named: n, Path: a.Cgroup.Path, Hook: string(a.Cgroup.AttachType), Pods: attach.Pods{InPods: a.Cgroup.Pods != nil}}, nil
	case a.SkLookup != nil:
		return &attach.SkLookup{Named: n, NetNS: a.SkLookup.NetNS}, nil
	}
	return nil, fmt.Errorf("program %s: %w", a.Name, attach.ErrNoAttachBlock)
}

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

func selector(s v1alpha1.InterfaceSelector) netwatch.Selector {
	return netwatch.Selector{Names: s.Names, Primary: s.Primary}
}
