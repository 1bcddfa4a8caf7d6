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
)

// Attach block kinds, as the API and bundle attach hints name them.
const (
	KindXDP           = "xdp"
	KindTC            = "tc"
	KindTracepoint    = "tracepoint"
	KindRawTracepoint = "rawTracepoint"
	KindFentry        = "fentry"
	KindFexit         = "fexit"
	KindKprobe        = "kprobe"
	KindUprobe        = "uprobe"
	KindCgroup        = "cgroup"
)

// Kind returns the attach block set in a, "" when none is.
func Kind(a v1alpha1.ProgramAttachment) string {
	switch {
	case a.XDP != nil:
		return KindXDP
	case a.TC != nil:
		return KindTC
	case a.Tracepoint != nil:
		return KindTracepoint
	case a.RawTracepoint != nil:
		return KindRawTracepoint
	case a.Fentry != nil:
		return KindFentry
	case a.Fexit != nil:
		return KindFexit
	case a.Kprobe != nil:
		return KindKprobe
	case a.Uprobe != nil:
		return KindUprobe
	case a.Cgroup != nil:
		return KindCgroup
	}
	return ""
}

// cgroupHooks maps each cgroup hook of the API to its kernel attach type and
// the one program type the kernel attaches there.
var cgroupHooks = map[v1alpha1.CgroupAttachType]struct {
	attach ebpf.AttachType
	prog   ebpf.ProgramType
}{
	"ingress":     {ebpf.AttachCGroupInetIngress, ebpf.CGroupSKB},
	"egress":      {ebpf.AttachCGroupInetEgress, ebpf.CGroupSKB},
	"sock_create": {ebpf.AttachCGroupInetSockCreate, ebpf.CGroupSock},
	"connect4":    {ebpf.AttachCGroupInet4Connect, ebpf.CGroupSockAddr},
	"connect6":    {ebpf.AttachCGroupInet6Connect, ebpf.CGroupSockAddr},
	"sendmsg4":    {ebpf.AttachCGroupUDP4Sendmsg, ebpf.CGroupSockAddr},
	"sendmsg6":    {ebpf.AttachCGroupUDP6Sendmsg, ebpf.CGroupSockAddr},
	"recvmsg4":    {ebpf.AttachCGroupUDP4Recvmsg, ebpf.CGroupSockAddr},
	"recvmsg6":    {ebpf.AttachCGroupUDP6Recvmsg, ebpf.CGroupSockAddr},
	"sock_ops":    {ebpf.AttachCGroupSockOps, ebpf.SockOps},
	"device":      {ebpf.AttachCGroupDevice, ebpf.CGroupDevice},
	"sysctl":      {ebpf.AttachCGroupSysctl, ebpf.CGroupSysctl},
	"getsockopt":  {ebpf.AttachCGroupGetsockopt, ebpf.CGroupSockopt},
	"setsockopt":  {ebpf.AttachCGroupSetsockopt, ebpf.CGroupSockopt},
}

// CgroupHook returns the kernel attach type of a cgroup hook and the program
// type it takes; ok is false for a hook the API does not define.
func CgroupHook(h v1alpha1.CgroupAttachType) (at ebpf.AttachType, prog ebpf.ProgramType, ok bool) {
	c, ok := cgroupHooks[h]
	return c.attach, c.prog, ok
}

// KindFits tells whether a program of type t, whose ELF section gives it the
// expected attach type at, can be attached by a block of kind. It is all an
// attach hint (a kind without a hook) allows checking; Fits checks a
// complete block.
func KindFits(kind string, t ebpf.ProgramType, at ebpf.AttachType) bool {
	switch kind {
	case KindXDP:
		return t == ebpf.XDP
	case KindTC:
		return t == ebpf.SchedCLS
	case KindTracepoint:
		return t == ebpf.TracePoint
	case KindRawTracepoint:
		return t == ebpf.RawTracepoint || t == ebpf.RawTracepointWritable ||
			t == ebpf.Tracing && at == ebpf.AttachTraceRawTp // tp_btf
	case KindFentry:
		return t == ebpf.Tracing && at == ebpf.AttachTraceFEntry
	case KindFexit:
		return t == ebpf.Tracing && at == ebpf.AttachTraceFExit
	case KindKprobe, KindUprobe:
		return t == ebpf.Kprobe
	case KindCgroup:
		for _, c := range cgroupHooks {
			if c.prog == t {
				return true
			}
		}
	}
	return false
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
