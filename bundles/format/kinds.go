package format

import (
	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
)

// AttachKind names an attach block kind. The table of kinds is
// nodeagent/attach's, where each kind is one file; importing it here gives
// every reader of a manifest every kind.
type AttachKind = attach.Kind

// AttachKinds returns the valid AttachHint.Kind values: every kind of the
// table, sorted.
func AttachKinds() []string {
	ks := attach.Kinds()
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, string(k))
	}
	return out
}

// KindFits tells whether a program of type t with expected attach type at
// fits a block of kind (false for an unknown kind).
func KindFits(kind AttachKind, t ebpf.ProgramType, at ebpf.AttachType) bool {
	return attach.KindFits(kind, t, at)
}
