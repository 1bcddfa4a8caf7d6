package dataplane

import (
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// Spec is what a BpfProgram asks of this node, its attach blocks already
// parsed into hooks: the dataplane reads no API types. The node agent's
// controller builds it (hookspec.Spec).
type Spec struct {
	// Programs are the programs to load, in the spec's order.
	Programs []Program
	// Constants are set in the object's read-only data before load.
	Constants []loader.Constant
	// MapEntries are written into the maps after load.
	MapEntries []loader.MapEntry
	// Key identifies the spec the programs, constants and map entries were
	// parsed from (not the pods resolved for it): equal keys, same spec.
	// Desired.RunsKey uses it.
	Key string
}

// Program is one program of a Spec and where it attaches.
type Program struct {
	// Name is the program's name in the bundle.
	Name string
	// Hook is where it attaches; nil when its attach block did not parse.
	Hook attach.Hook
	// Err says why the attach block did not parse; it is the program's
	// status.
	Err error
}

// hookSet is a spec's hooks by program name, and the error of each attach
// block that did not parse.
type hookSet struct {
	Hooks map[string]attach.Hook
	Errs  map[string]error
}

func hooksOf(s Spec) hookSet {
	hs := hookSet{Hooks: map[string]attach.Hook{}, Errs: map[string]error{}}
	for _, p := range s.Programs {
		if p.Err != nil || p.Hook == nil {
			hs.Errs[p.Name] = p.Err
			continue
		}
		hs.Hooks[p.Name] = p.Hook
	}
	return hs
}
