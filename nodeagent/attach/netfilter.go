package attach

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

func init() {
	register(Def{Kind: KindNetfilter, Programs: []ProgramFit{{Type: ebpf.Netfilter, AttachType: ebpf.AttachNetfilter}},
		Exclusive: true, PointPrefixes: []string{"netfilter"},
		Parse: func(name string, block []byte) (Hook, error) {
			h := &Netfilter{Named: Named{name}}
			if err := decode(block, h); err != nil {
				return nil, err
			}
			if _, ok := netfilterFamilies[h.Family]; !ok {
				return nil, fmt.Errorf("netfilter family %q: %w", h.Family, ErrNoAttachBlock)
			}
			if _, ok := netfilterHooks[h.Hook]; !ok {
				return nil, fmt.Errorf("netfilter hook %q: %w", h.Hook, ErrNoAttachBlock)
			}
			return h, nil
		}})
}

// KindNetfilter is the netfilter attach block: a netfilter hook of a
// network namespace (Linux 6.4).
const KindNetfilter Kind = "netfilter"

// The netfilter families and hooks of the API, and the kernel's numbers.
var (
	netfilterFamilies = map[string]link.NetfilterProtocolFamily{
		"ipv4": link.NetfilterProtoIPv4,
		"ipv6": link.NetfilterProtoIPv6,
	}
	netfilterHooks = map[string]link.NetfilterInetHook{
		"prerouting":  link.NetfilterInetPreRouting,
		"input":       link.NetfilterInetLocalIn,
		"forward":     link.NetfilterInetForward,
		"output":      link.NetfilterInetLocalOut,
		"postrouting": link.NetfilterInetPostRouting,
	}
)

// Netfilter attaches a netfilter program to one hook of a network
// namespace, where it sees (and may drop) each packet passing it.
type Netfilter struct {
	Named
	// Family is ipv4 or ipv6.
	Family string `json:"family"`
	// Hook is prerouting, input, forward, output or postrouting.
	Hook string `json:"hook"`
	// Priority orders the programs and netfilter tables of one hook,
	// lower first.
	Priority int32 `json:"priority"`
	// NetNS is the path of a network namespace file on the node (under
	// Env.HostRoot); empty is the agent's own namespace.
	NetNS string `json:"netns"`
}

func (h *Netfilter) Kind() Kind { return KindNetfilter }

// Targets: one, attached inside the namespace (the kernel attaches
// netfilter links to the namespace of the caller).
func (h *Netfilter) Targets(env Env) ([]Target, error) {
	path := h.path(env.HostRoot)
	t := Target{Hook: h, Program: h.Program(), Kind: h.Kind(), HostRoot: env.HostRoot,
		Point: fmt.Sprintf("netfilter/%s/%s/%d:%s", h.Family, h.Hook, h.Priority, path)}
	if h.NetNS != "" {
		t.Netns = netwatch.NewNetlink(path)
	}
	return []Target{t}, nil
}

func (h *Netfilter) Prepare(ps *ebpf.ProgramSpec) error { return checkFits(h, ps) }
func (h *Netfilter) LoadKey() string                    { return "" }
func (h *Netfilter) Supported() error                   { return nil }

// path is the namespace file as the agent sees it.
func (h *Netfilter) path(hostRoot string) string { return netnsPath(hostRoot, h.NetNS) }

// Attach attaches with a bpf_link (pinnable; not updatable, and one
// program per hook and priority: an upgrade closes the old link first).
func (h *Netfilter) Attach(prog *ebpf.Program, _ Target) (link.Link, error) {
	return link.AttachNetfilter(link.NetfilterOptions{Program: prog,
		ProtocolFamily: netfilterFamilies[h.Family], Hook: netfilterHooks[h.Hook], Priority: h.Priority})
}

// Alive: the link still names the hook it was attached to.
func (h *Netfilter) Alive(l link.Link, _ Target) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	nf := info.Netfilter()
	return nf == nil || (nf.Hook == netfilterHooks[h.Hook] && nf.Priority == h.Priority)
}
