package format

import "github.com/cilium/ebpf"

// AttachKind names an attach block kind: the field of the BpfProgram attach
// block, the bundle manifest's attach hint, the first word of a trust
// policy's allowedAttachTypes, the kind the node agent's hooks report and
// the kind its bpffs records store. One name per kind, everywhere.
type AttachKind string

// Attach kinds, as the API, the manifest and the agent name them.
const (
	KindXDP           AttachKind = "xdp"
	KindTC            AttachKind = "tc" // attached with tcx
	KindTracepoint    AttachKind = "tracepoint"
	KindRawTracepoint AttachKind = "rawTracepoint" // raw_tp, or tp_btf
	KindFentry        AttachKind = "fentry"
	KindFexit         AttachKind = "fexit"
	KindKprobe        AttachKind = "kprobe"
	KindUprobe        AttachKind = "uprobe"
	KindCgroup        AttachKind = "cgroup"
	KindSkLookup      AttachKind = "skLookup" // sk_lookup, on a network namespace
)

// ProgramFit is one kernel program type a kind takes, with the expected
// attach type its ELF section must give it (AnyAttachType: the kernel does
// not care).
type ProgramFit struct {
	Type          ebpf.ProgramType
	AttachType    ebpf.AttachType
	AnyAttachType bool
}

// KindInfo is one row of the table of attach kinds.
type KindInfo struct {
	// Kind is the kind's one name.
	Kind AttachKind
	// Programs are the program types (and expected attach types) a block of
	// this kind can attach. For cgroup, each hook takes exactly one of them
	// (CgroupHook).
	Programs []ProgramFit
}

func anyAttach(t ebpf.ProgramType) ProgramFit { return ProgramFit{Type: t, AnyAttachType: true} }

// kindTable is the one table of attach kinds: the operator's compatibility
// check, the manifest's list of kinds, the bundle builder and the node
// agent's hooks all read it.
var kindTable = []KindInfo{
	{Kind: KindXDP, Programs: []ProgramFit{anyAttach(ebpf.XDP)}},
	{Kind: KindTC, Programs: []ProgramFit{anyAttach(ebpf.SchedCLS)}},
	{Kind: KindTracepoint, Programs: []ProgramFit{anyAttach(ebpf.TracePoint)}},
	{Kind: KindRawTracepoint, Programs: []ProgramFit{anyAttach(ebpf.RawTracepoint), anyAttach(ebpf.RawTracepointWritable),
		{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp}}}, // tp_btf
	{Kind: KindFentry, Programs: []ProgramFit{{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry}}},
	{Kind: KindFexit, Programs: []ProgramFit{{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFExit}}},
	{Kind: KindKprobe, Programs: []ProgramFit{anyAttach(ebpf.Kprobe)}},
	{Kind: KindUprobe, Programs: []ProgramFit{anyAttach(ebpf.Kprobe)}},
	{Kind: KindCgroup, Programs: cgroupPrograms()},
	{Kind: KindSkLookup, Programs: []ProgramFit{{Type: ebpf.SkLookup, AttachType: ebpf.AttachSkLookup}}},
}

// CgroupHookInfo is one cgroup v2 hook: its kernel attach type and the one
// program type the kernel attaches there.
type CgroupHookInfo struct {
	AttachType ebpf.AttachType
	Program    ebpf.ProgramType
}

// cgroupHooks maps each cgroup hook of the API (CgroupAttach.AttachType) to
// its kernel attach type and program type.
var cgroupHooks = map[string]CgroupHookInfo{
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

func cgroupPrograms() []ProgramFit {
	var out []ProgramFit
	seen := map[ebpf.ProgramType]bool{}
	for _, h := range cgroupHooks {
		if !seen[h.Program] {
			seen[h.Program] = true
			out = append(out, anyAttach(h.Program))
		}
	}
	return out
}

// CgroupHook returns a cgroup hook by its API name; ok is false for a hook
// the API does not define.
func CgroupHook(name string) (CgroupHookInfo, bool) {
	h, ok := cgroupHooks[name]
	return h, ok
}

// Kinds returns the table of attach kinds, in the API's order.
func Kinds() []KindInfo { return append([]KindInfo(nil), kindTable...) }

// LookupKind returns a kind's row; ok is false for an unknown kind.
func LookupKind(kind AttachKind) (KindInfo, bool) {
	for _, k := range kindTable {
		if k.Kind == kind {
			return k, true
		}
	}
	return KindInfo{}, false
}

// Fits tells whether a program of type t, whose ELF section gives it the
// expected attach type at, can be attached by a block of this kind.
func (k KindInfo) Fits(t ebpf.ProgramType, at ebpf.AttachType) bool {
	for _, p := range k.Programs {
		if p.Type == t && (p.AnyAttachType || p.AttachType == at) {
			return true
		}
	}
	return false
}

// KindFits tells whether a program of type t with expected attach type at
// fits a block of kind (false for an unknown kind).
func KindFits(kind AttachKind, t ebpf.ProgramType, at ebpf.AttachType) bool {
	k, ok := LookupKind(kind)
	return ok && k.Fits(t, at)
}

// AttachKinds are the valid AttachHint.Kind values: every kind of the table.
var AttachKinds = kindNames()

func kindNames() []string {
	out := make([]string, 0, len(kindTable))
	for _, k := range kindTable {
		out = append(out, string(k.Kind))
	}
	return out
}
