// Package hooks is the one rule, shared by the bundle builder, the operator,
// the agent and the trust checks, for which programs fit which attach block
// of the API, and the names trust policies give hooks (allowedAttachTypes).
//
// A block takes programs of exactly the types it can attach, not a family:
// a cgroup hook takes the one program type its kernel attach type expects
// (ingress and egress take cgroup_skb, device takes cgroup_device, ...).
package hooks

import (
	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
)

// Attach block kinds, as the API and bundle attach hints name them (the
// one table of kinds is format.Kinds).
const (
	KindXDP           = string(format.KindXDP)
	KindTC            = string(format.KindTC)
	KindTracepoint    = string(format.KindTracepoint)
	KindRawTracepoint = string(format.KindRawTracepoint)
	KindFentry        = string(format.KindFentry)
	KindFexit         = string(format.KindFexit)
	KindKprobe        = string(format.KindKprobe)
	KindUprobe        = string(format.KindUprobe)
	KindCgroup        = string(format.KindCgroup)
	KindSkLookup      = string(format.KindSkLookup)
)

// blocks lists each attach block of the API with its kind: the one place
// that knows which field of ProgramAttachment is which kind.
var blocks = []struct {
	kind format.AttachKind
	set  func(a *v1alpha1.ProgramAttachment) bool
}{
	{format.KindXDP, func(a *v1alpha1.ProgramAttachment) bool { return a.XDP != nil }},
	{format.KindTC, func(a *v1alpha1.ProgramAttachment) bool { return a.TC != nil }},
	{format.KindTracepoint, func(a *v1alpha1.ProgramAttachment) bool { return a.Tracepoint != nil }},
	{format.KindRawTracepoint, func(a *v1alpha1.ProgramAttachment) bool { return a.RawTracepoint != nil }},
	{format.KindFentry, func(a *v1alpha1.ProgramAttachment) bool { return a.Fentry != nil }},
	{format.KindFexit, func(a *v1alpha1.ProgramAttachment) bool { return a.Fexit != nil }},
	{format.KindKprobe, func(a *v1alpha1.ProgramAttachment) bool { return a.Kprobe != nil }},
	{format.KindUprobe, func(a *v1alpha1.ProgramAttachment) bool { return a.Uprobe != nil }},
	{format.KindCgroup, func(a *v1alpha1.ProgramAttachment) bool { return a.Cgroup != nil }},
	{format.KindSkLookup, func(a *v1alpha1.ProgramAttachment) bool { return a.SkLookup != nil }},
}

// Kinds returns every attach block set in a, in the API's order.
func Kinds(a v1alpha1.ProgramAttachment) []format.AttachKind {
	var out []format.AttachKind
	for _, b := range blocks {
		if b.set(&a) {
			out = append(out, b.kind)
		}
	}
	return out
}

// Kind returns the attach block set in a, "" when none is.
func Kind(a v1alpha1.ProgramAttachment) string {
	if ks := Kinds(a); len(ks) > 0 {
		return string(ks[0])
	}
	return ""
}

// CgroupHook returns the kernel attach type of a cgroup hook and the program
// type it takes; ok is false for a hook the API does not define.
func CgroupHook(h v1alpha1.CgroupAttachType) (at ebpf.AttachType, prog ebpf.ProgramType, ok bool) {
	c, ok := format.CgroupHook(string(h))
	return c.AttachType, c.Program, ok
}

// KindFits tells whether a program of type t, whose ELF section gives it the
// expected attach type at, can be attached by a block of kind. It is all an
// attach hint (a kind without a hook) allows checking; Fits checks a
// complete block.
func KindFits(kind string, t ebpf.ProgramType, at ebpf.AttachType) bool {
	return format.KindFits(format.AttachKind(kind), t, at)
}

// Fits tells whether a program of type t with expected attach type at can be
// attached by the block a: KindFits, and for cgroup blocks exactly the
// program type of the hook.
func Fits(a v1alpha1.ProgramAttachment, t ebpf.ProgramType, at ebpf.AttachType) bool {
	if a.Cgroup != nil {
		_, prog, ok := CgroupHook(a.Cgroup.AttachType)
		return ok && prog == t
	}
	return KindFits(Kind(a), t, at)
}

// AttachType names the hook a attaches to, as trust policies list it in
// allowedAttachTypes: the block kind, followed for tc by the direction and
// for cgroup by the hook: "xdp", "tc/ingress", "tracepoint",
// "rawTracepoint", "uprobe", "cgroup/device", "cgroup/connect4", ... ""
// when no block is set.
func AttachType(a v1alpha1.ProgramAttachment) string {
	switch {
	case a.TC != nil:
		return KindTC + "/" + string(a.TC.Direction)
	case a.Cgroup != nil:
		return KindCgroup + "/" + string(a.Cgroup.AttachType)
	}
	return Kind(a)
}
