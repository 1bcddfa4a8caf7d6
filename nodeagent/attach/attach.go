// Package attach attaches loaded programs to their hooks: one file and one
// type per attach kind, each implementing Hook (cilium/ebpf's link/ is the
// model). A Hook is one program's attach block, parsed once (by
// api/hooks, from the API, through the kind's Def.Parse); a Target is one attach point it
// resolves to on this node, resolved again whenever the node changes.
//
// The package does not know the API types: adding an attach kind is one
// file here (its Hook type, and its Def: name, program types, how its CRD
// attach block parses, registered from init, its row of the table of kinds that
// the operator, the manifest and the bundle builder read too), one CRD field in api/v1alpha1, and
// their tests.
package attach

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
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

// Hook is one program's attach block. Each kind's file implements it.
type Hook interface {
	// Kind is the attach kind.
	Kind() Kind
	// Program is the program's name in the bundle.
	Program() string
	// Targets resolves the block to attach points on this node: one per
	// selected interface for per-interface kinds, one otherwise. Nothing
	// selected yields no target and no error.
	Targets(env Env) ([]Target, error)
	// Prepare checks the program type against the kinds table and sets
	// what the kernel fixes at load (expected attach type, attach target).
	Prepare(ps *ebpf.ProgramSpec) error
	// LoadKey names what of the block is fixed when the program is loaded
	// (a change needs a reload); "" when nothing is.
	LoadKey() string
	// Supported checks, from cached probes, that this node can attach the
	// kind at all.
	Supported() error
	// Attach attaches prog at t. Call it through Target.Attach, which
	// enters t's network namespace first.
	Attach(prog *ebpf.Program, t Target) (link.Link, error)
	// Alive tells whether l is still attached where t says.
	Alive(l link.Link, t Target) bool
}

// Namespace runs a function inside a network namespace (netwatch.Source
// does, for the namespace its interfaces live in).
type Namespace interface {
	Do(fn func() error) error
}

// Env is what a hook resolves its targets against, read when the targets
// are planned (every apply, and whenever interfaces change).
type Env struct {
	// Interfaces are the interfaces of the node's network namespace, and
	// Primary the one of the default route.
	Interfaces []netwatch.Interface
	Primary    string
	// InterfacesErr is set when the interfaces could not be listed.
	InterfacesErr error
	// Netns enters the namespace Interfaces belong to; nil: the agent's own.
	Netns Namespace
	// HostRoot is where the node's root filesystem is mounted, for paths
	// of the node (uprobe binaries, netns files); empty when the agent
	// runs in it.
	HostRoot string
}

// Target is one program at one attach point.
type Target struct {
	// Hook is the attach block; nil for a link re-adopted from a record
	// before the spec is known again.
	Hook Hook
	// Program is the program's name in the bundle.
	Program string
	// Kind is the attach kind.
	Kind Kind
	// Point names the attach point as status shows it, e.g. xdp/eth0.
	Point string
	// Interface is the network interface for per-interface kinds.
	Interface netwatch.Interface
	// Netns is the namespace the attach runs in (per-interface kinds:
	// where Interface lives); nil: the agent's own.
	Netns Namespace
	// HostRoot is Env.HostRoot.
	HostRoot string
	// Path is the file a pod target attaches to, resolved on this node: a
	// pod's cgroup directory, or a binary inside a container's root
	// filesystem; "" for node targets, whose hook names its own.
	Path string
}

// Attach attaches prog at t, inside t's network namespace when it has one.
func (t Target) Attach(prog *ebpf.Program) (link.Link, error) {
	if t.Hook == nil {
		return nil, fmt.Errorf("attach %s to %s: no attach block: %w", t.Program, t.Point, ErrNoAttachBlock)
	}
	var l link.Link
	var err error
	if t.Netns != nil {
		err = t.Netns.Do(func() error {
			l, err = t.Hook.Attach(prog, t)
			return err
		})
	} else {
		l, err = t.Hook.Attach(prog, t)
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
	if _, err := l.Info(); err != nil {
		return false
	}
	if t.Hook == nil {
		return true
	}
	return t.Hook.Alive(l, t)
}

// Def is one attach kind: what bpfleet knows of it besides its Hook type.
// Each kind's file registers one from init: its row of the table of kinds.
type Def struct {
	// Kind is the kind's one name: the field of its CRD attach block, the
	// manifest's attach hint, the trust policy's first word, the records'
	// kind.
	Kind Kind
	// Programs are the program types (and expected attach types) a block
	// of this kind takes.
	Programs []ProgramFit
	// Updatable: a link of this kind swaps its program in place with
	// Link.Update (atomically, link id unchanged). Other kinds attach the
	// new program before closing the old link.
	Updatable bool
	// Exclusive: an attach point of this kind takes one program (the
	// kernel refuses a second with EBUSY), so a kind that is not
	// Updatable frees the point before attaching the new program,
	// leaving it without one for that moment.
	Exclusive bool
	// PerInterface: the kind attaches once per network interface.
	PerInterface bool
	// PointPrefixes are the first words of the kind's attach points
	// (before the first /), to read records that predate the stored kind.
	PointPrefixes []string
	// PolicyHooks, for kinds whose blocks choose a hook, are the words
	// that follow the kind in trust policies' allowedAttachTypes
	// (tc/ingress, cgroup/device; kind/* names them all). None: policies
	// name the kind alone.
	PolicyHooks []string
	// Parse turns the kind's CRD attach block, as JSON, into the hook of
	// program name.
	Parse func(name string, block []byte) (Hook, error)
}

// Parse returns the hook of program name from its attach block of kind k
// (the block's JSON, as the API writes it).
func Parse(k Kind, name string, block []byte) (Hook, error) {
	d, ok := lookup(k)
	if !ok {
		return nil, fmt.Errorf("program %s: attach kind %q: %w", name, k, ErrNoAttachBlock)
	}
	h, err := d.Parse(name, block)
	if err != nil {
		return nil, fmt.Errorf("program %s: parse %s block: %w", name, k, err)
	}
	return h, nil
}

// decode reads a kind's attach block into v.
func decode(block []byte, v any) error {
	return json.Unmarshal(block, v)
}

// decodeHook is a Def.Parse for kinds whose hook type reads its CRD block
// itself (its fields carry the block's JSON names): it decodes block into
// h, which names its program already.
func decodeHook[H Hook](h H, block []byte) (Hook, error) {
	if err := decode(block, h); err != nil {
		return nil, err
	}
	return h, nil
}

// PolicyName names the hook h attaches to as trust policies list it in
// allowedAttachTypes: the kind, followed by what the kind's blocks choose
// (tc/ingress, cgroup/device) for kinds whose hooks say so.
func PolicyName(h Hook) string {
	if p, ok := h.(interface{ policyName() string }); ok {
		return p.policyName()
	}
	return string(h.Kind())
}

// Fits tells whether a program of type t, whose ELF section gives it the
// expected attach type at, can be attached by h: its kind's row of the
// table, narrowed by the hook where its block chooses the program type
// (a cgroup hook takes exactly one).
func Fits(h Hook, t ebpf.ProgramType, at ebpf.AttachType) bool {
	if f, ok := h.(interface {
		fits(ebpf.ProgramType, ebpf.AttachType) bool
	}); ok {
		return f.fits(t, at)
	}
	return KindFits(h.Kind(), t, at)
}

// Updatable tells whether a link of kind k swaps its program in place with
// Link.Update (atomically, link id unchanged). Other kinds attach the new
// program before closing the old link.
func Updatable(k Kind) bool {
	d, _ := lookup(k)
	return d.Updatable
}

// Exclusive tells whether an attach point of kind k takes one program at a
// time: a link that cannot be updated in place is closed before the new
// program attaches.
func Exclusive(k Kind) bool {
	d, _ := lookup(k)
	return d.Exclusive
}

// PerInterface tells whether kind k attaches once per network interface.
func PerInterface(k Kind) bool {
	d, _ := lookup(k)
	return d.PerInterface
}

// Known tells whether this agent can attach kind k.
func Known(k Kind) bool {
	_, ok := lookup(k)
	return ok
}

// KindOfPoint returns the kind of an attach point string (as Targets write
// it), or "" when unknown. Only records written before they stored the
// kind need it.
func KindOfPoint(point string) Kind {
	prefix, _, _ := strings.Cut(point, "/")
	kindMu.RLock()
	defer kindMu.RUnlock()
	for k, d := range kinds {
		for _, p := range d.PointPrefixes {
			if p == prefix {
				return k
			}
		}
	}
	return ""
}

// Named is the program a hook attaches; every hook type embeds it.
type Named struct {
	// Name is the program's name in the bundle (not a field of the block).
	Name string `json:"-"`
}

// Program is the program's name in the bundle.
func (n Named) Program() string { return n.Name }

// single is the one target of a kind that is not per interface.
func single(h Hook, env Env, point string) []Target {
	return []Target{{Hook: h, Program: h.Program(), Kind: h.Kind(), Point: point, HostRoot: env.HostRoot}}
}

// perInterface is one target per interface sel picks, attached inside the
// interfaces' namespace; point names the target for an interface.
func perInterface(h Hook, env Env, sel netwatch.Selector, point func(ifname string) string) ([]Target, error) {
	if env.InterfacesErr != nil {
		return nil, fmt.Errorf("list interfaces: %w", env.InterfacesErr)
	}
	picked, err := netwatch.Select(sel, env.Interfaces, env.Primary)
	if err != nil {
		return nil, fmt.Errorf("program %s: %w", h.Program(), err)
	}
	out := make([]Target, 0, len(picked))
	for _, ifc := range picked {
		out = append(out, Target{Hook: h, Program: h.Program(), Kind: h.Kind(), Point: point(ifc.Name),
			Interface: ifc, Netns: env.Netns, HostRoot: env.HostRoot})
	}
	return out, nil
}

// checkFits refuses a program whose type (and expected attach type) the
// kind does not take, per the table of kinds.
func checkFits(h Hook, ps *ebpf.ProgramSpec) error {
	if !KindFits(h.Kind(), ps.Type, ps.AttachType) {
		return mismatch(h, ps)
	}
	return nil
}

func mismatch(h Hook, ps *ebpf.ProgramSpec) error {
	return fmt.Errorf("program %s is %s, attach block is %s: %w", h.Program(), ps.Type, h.Kind(), ErrTypeMismatch)
}

// interfaceBlock is the API's interface selector of per-interface kinds.
type interfaceBlock struct {
	Names   []string `json:"names"`
	Primary bool     `json:"primary"`
}

func (b interfaceBlock) selector() netwatch.Selector {
	return netwatch.Selector{Names: b.Names, Primary: b.Primary}
}

// ownNetNS is the agent's own network namespace: the node's, for an agent
// on the host network.
const ownNetNS = "/proc/self/ns/net"

// netnsPath is a block's network namespace file (a path on the node, ""
// for the agent's own) as the agent sees it.
func netnsPath(hostRoot, netns string) string {
	if netns == "" {
		return ownNetNS
	}
	return hostPath(hostRoot, netns)
}
