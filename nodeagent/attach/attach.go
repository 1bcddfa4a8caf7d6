// Package attach attaches loaded programs to their hooks, one file per hook
// kind. A Target is one program at one attach point; Targets expands a
// spec's attach block over the node's interfaces.
package attach

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

// Kind is a hook kind.
type Kind string

// Hook kinds.
const (
	KindXDP        Kind = "xdp"
	KindTCX        Kind = "tcx"
	KindTracepoint Kind = "tracepoint"
	KindRawTP      Kind = "raw_tp" // raw_tp, or tp_btf for BTF-enabled programs
	KindUprobe     Kind = "uprobe"
	KindCgroup     Kind = "cgroup"
	KindKprobe     Kind = "kprobe"
	KindFentry     Kind = "fentry"
	KindFexit      Kind = "fexit"
)

// Sentinel errors.
var (
	// ErrTypeMismatch: the program's type does not fit the attach block.
	ErrTypeMismatch = errors.New("program type does not fit the attach block")
	// ErrNoAttachBlock: an attachment carries no (or more than one) attach block.
	ErrNoAttachBlock = errors.New("exactly one attach block must be set")
	// ErrNotSupported: this kernel cannot attach there.
	ErrNotSupported = ebpf.ErrNotSupported
)

// KindOf returns the hook kind of an attach block.
func KindOf(a v1alpha1.ProgramAttachment) (Kind, error) {
	var kinds []Kind
	add := func(set bool, k Kind) {
		if set {
			kinds = append(kinds, k)
		}
	}
	add(a.XDP != nil, KindXDP)
	add(a.TC != nil, KindTCX)
	add(a.Tracepoint != nil, KindTracepoint)
	add(a.RawTracepoint != nil, KindRawTP)
	add(a.Uprobe != nil, KindUprobe)
	add(a.Cgroup != nil, KindCgroup)
	add(a.Kprobe != nil, KindKprobe)
	add(a.Fentry != nil, KindFentry)
	add(a.Fexit != nil, KindFexit)
	if len(kinds) != 1 {
		return "", fmt.Errorf("program %s: %w", a.Name, ErrNoAttachBlock)
	}
	return kinds[0], nil
}

// Updatable tells whether a link of this kind swaps its program in place
// with Link.Update (atomically, link id unchanged). Other kinds attach the
// new program before closing the old link.
func (k Kind) Updatable() bool {
	return k == KindXDP || k == KindTCX || k == KindCgroup
}

// PerInterface tells whether the kind attaches once per network interface.
func (k Kind) PerInterface() bool { return k == KindXDP || k == KindTCX }

// Target is one program at one attach point.
type Target struct {
	// Program is the program's name in the bundle.
	Program string
	// Kind is the hook kind.
	Kind Kind
	// Point names the attach point as status shows it, e.g. xdp/eth0.
	Point string
	// Interface is the network interface for per-interface kinds.
	Interface netwatch.Interface
	// Spec is the attach block.
	Spec v1alpha1.ProgramAttachment
	// HostRoot is where the node's root filesystem is mounted, for paths
	// of the node (uprobe targets); empty when the agent runs in it.
	HostRoot string
}

// Targets expands an attach block into its targets: one per selected
// interface for XDP and tcx, one otherwise. No interface selected yields no
// target and no error.
func Targets(a v1alpha1.ProgramAttachment, ifaces []netwatch.Interface, primary string) ([]Target, error) {
	kind, err := KindOf(a)
	if err != nil {
		return nil, err
	}
	if kind.PerInterface() {
		var sel v1alpha1.InterfaceSelector
		if a.XDP != nil {
			sel = a.XDP.Interfaces
		} else {
			sel = a.TC.Interfaces
		}
		picked, err := netwatch.Select(sel, ifaces, primary)
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", a.Name, err)
		}
		out := make([]Target, 0, len(picked))
		for _, ifc := range picked {
			t := Target{Program: a.Name, Kind: kind, Interface: ifc, Spec: a}
			t.Point = t.point()
			out = append(out, t)
		}
		return out, nil
	}
	t := Target{Program: a.Name, Kind: kind, Spec: a}
	t.Point = t.point()
	return []Target{t}, nil
}

func (t Target) point() string {
	a := t.Spec
	switch t.Kind {
	case KindXDP:
		return xdpPoint(a.XDP, t.Interface.Name)
	case KindTCX:
		return tcxPoint(a.TC, t.Interface.Name)
	case KindTracepoint:
		return "tracepoint/" + a.Tracepoint.Group + "/" + a.Tracepoint.Name
	case KindRawTP:
		return "raw_tp/" + a.RawTracepoint.Name
	case KindUprobe:
		return uprobePoint(a.Uprobe)
	case KindCgroup:
		return "cgroup/" + string(a.Cgroup.AttachType) + ":" + CgroupPath(a.Cgroup.Path)
	case KindKprobe:
		if a.Kprobe.Return {
			return "kretprobe/" + a.Kprobe.Function
		}
		return "kprobe/" + a.Kprobe.Function
	case KindFentry:
		return "fentry/" + a.Fentry.Function
	case KindFexit:
		return "fexit/" + a.Fexit.Function
	}
	return string(t.Kind)
}

// Prepare adjusts a program spec to its attach block before load (attach
// target and expected attach type) and checks that the program type fits.
func Prepare(ps *ebpf.ProgramSpec, a v1alpha1.ProgramAttachment) error {
	kind, err := KindOf(a)
	if err != nil {
		return err
	}
	mismatch := func() error {
		return fmt.Errorf("program %s is %s, attach block is %s: %w", a.Name, ps.Type, kind, ErrTypeMismatch)
	}
	switch kind {
	case KindXDP:
		if ps.Type != ebpf.XDP {
			return mismatch()
		}
	case KindTCX:
		if ps.Type != ebpf.SchedCLS {
			return mismatch()
		}
	case KindTracepoint:
		if ps.Type != ebpf.TracePoint {
			return mismatch()
		}
	case KindRawTP:
		return prepareRawTP(ps, a.RawTracepoint, mismatch)
	case KindUprobe, KindKprobe:
		if ps.Type != ebpf.Kprobe {
			return mismatch()
		}
	case KindCgroup:
		return prepareCgroup(ps, a.Cgroup, mismatch)
	case KindFentry:
		return prepareTracing(ps, a.Fentry.Function, ebpf.AttachTraceFEntry, mismatch)
	case KindFexit:
		return prepareTracing(ps, a.Fexit.Function, ebpf.AttachTraceFExit, mismatch)
	}
	return nil
}

// LoadKey names what of an attach block is fixed when the program is loaded
// (the expected attach type of cgroup programs, the target of fentry, fexit
// and tp_btf programs): a change needs a reload. "" when nothing is.
func LoadKey(a v1alpha1.ProgramAttachment) string {
	switch {
	case a.Cgroup != nil:
		return a.Name + "/cgroup/" + string(a.Cgroup.AttachType)
	case a.Fentry != nil:
		return a.Name + "/fentry/" + a.Fentry.Function
	case a.Fexit != nil:
		return a.Name + "/fexit/" + a.Fexit.Function
	case a.RawTracepoint != nil:
		return a.Name + "/raw_tp/" + a.RawTracepoint.Name
	}
	return ""
}

// Attach attaches prog at t. Per-interface kinds must run in the network
// namespace of t.Interface (netwatch.Source.Do).
func (t Target) Attach(prog *ebpf.Program) (link.Link, error) {
	var l link.Link
	var err error
	switch t.Kind {
	case KindXDP:
		l, err = attachXDP(prog, t.Interface, t.Spec.XDP)
	case KindTCX:
		l, err = attachTCX(prog, t.Interface, t.Spec.TC)
	case KindTracepoint:
		l, err = attachTracepoint(prog, t.Spec.Tracepoint)
	case KindRawTP:
		l, err = attachRawTP(prog, t.Spec.RawTracepoint)
	case KindUprobe:
		l, err = attachUprobe(prog, t.Spec.Uprobe, t.HostRoot)
	case KindCgroup:
		l, err = attachCgroup(prog, t.Spec.Cgroup)
	case KindKprobe:
		l, err = attachKprobe(prog, t.Spec.Kprobe)
	case KindFentry, KindFexit:
		l, err = attachTracing(prog)
	default:
		err = fmt.Errorf("unknown kind %q: %w", t.Kind, ErrNoAttachBlock)
	}
	if err != nil {
		return nil, fmt.Errorf("attach %s to %s: %w", t.Program, t.Point, err)
	}
	return l, nil
}

// Alive tells whether l is still attached where t says: a link whose
// interface went away (ifindex 0) or was recreated (new ifindex), or that
// was detached out of band, is not. Kinds the kernel reports nothing for
// are assumed alive.
func (t Target) Alive(l link.Link) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	switch t.Kind {
	case KindXDP:
		x := info.XDP()
		return x != nil && x.Ifindex != 0 && int(x.Ifindex) == t.Interface.Index
	case KindTCX:
		x := info.TCX()
		return x != nil && x.Ifindex != 0 && int(x.Ifindex) == t.Interface.Index
	case KindCgroup:
		c := info.Cgroup()
		return c == nil || c.CgroupId != 0
	}
	return true
}
