package attach

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"golang.org/x/sys/unix"
)

func init() {
	register(Def{Kind: KindSkLookup, Programs: []ProgramFit{{Type: ebpf.SkLookup, AttachType: ebpf.AttachSkLookup}},
		Updatable: true, PointPrefixes: []string{"sk_lookup"},
		Parse: func(name string, block []byte) (Hook, error) { return decodeHook(&SkLookup{Named: Named{name}}, block) }})
}

// KindSkLookup is the skLookup attach block: sk_lookup, on a network
// namespace.
const KindSkLookup Kind = "skLookup"

// SkLookup attaches an sk_lookup program to a network namespace, where it
// picks the socket each new connection or datagram is delivered to.
type SkLookup struct {
	Named
	// NetNS is the path of a network namespace file on the node (under
	// Env.HostRoot); empty is the agent's own namespace.
	NetNS string `json:"netns"`
}

func (h *SkLookup) Kind() Kind { return KindSkLookup }

func (h *SkLookup) Targets(env Env) ([]Target, error) {
	return single(h, env, "sk_lookup/"+h.path("")), nil
}

func (h *SkLookup) Prepare(ps *ebpf.ProgramSpec) error { return checkFits(h, ps) }
func (h *SkLookup) LoadKey() string                    { return "" }
func (h *SkLookup) Supported() error                   { return nil }

// path is the namespace file as the agent sees it.
func (h *SkLookup) path(hostRoot string) string { return netnsPath(hostRoot, h.NetNS) }

// Attach attaches with a bpf_link on the namespace (pinnable, updatable).
func (h *SkLookup) Attach(prog *ebpf.Program, t Target) (link.Link, error) {
	f, err := os.Open(h.path(t.HostRoot))
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	defer f.Close()
	return link.AttachNetNs(int(f.Fd()), prog)
}

// Alive: the namespace still exists (the kernel detaches the link when it
// goes, and reports inode 0), and the path still names it.
func (h *SkLookup) Alive(l link.Link, t Target) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	ns := info.NetNs()
	if ns == nil || ns.NetnsInode == 0 {
		return false
	}
	var st unix.Stat_t
	if err := unix.Stat(h.path(t.HostRoot), &st); err != nil {
		return true // cannot tell; the link still has its namespace
	}
	return uint64(ns.NetnsInode) == st.Ino
}
