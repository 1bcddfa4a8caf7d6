package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

func init() {
	register(Def{Kind: KindXDP, Programs: []ProgramFit{AnyAttach(ebpf.XDP)},
		Updatable: true, PerInterface: true, PointPrefixes: []string{"xdp", "xdp-generic"},
		Parse: func(name string, block []byte) (Hook, error) {
			var b struct {
				Interfaces interfaceBlock `json:"interfaces"`
				Pods       *struct{}      `json:"pods"`
				Mode       string         `json:"mode"`
			}
			err := decode(block, &b)
			return &XDP{Named: Named{name}, Interfaces: b.Interfaces.selector(), Generic: b.Mode == "generic",
				Pods: Pods{InPods: b.Pods != nil}}, err
		}})
}

// KindXDP is the xdp attach block.
const KindXDP Kind = "xdp"

// XDP attaches to network interfaces, in driver (native) or generic mode.
type XDP struct {
	Named
	// Interfaces selects the interfaces.
	Interfaces netwatch.Selector
	// Generic attaches in generic (skb) mode instead of the driver.
	Generic bool
	// Pods, when InPods, picks the interfaces inside each pod instead.
	Pods Pods
}

func (h *XDP) Kind() Kind { return KindXDP }

func (h *XDP) Targets(env Env) ([]Target, error) {
	prefix := "xdp"
	if h.Generic {
		prefix = "xdp-generic"
	}
	if h.Pods.InPods {
		return perPodInterface(h, h.Pods, h.Interfaces, prefix)
	}
	return perInterface(h, env, h.Interfaces, func(ifname string) string { return prefix + "/" + ifname })
}

func (h *XDP) Prepare(ps *ebpf.ProgramSpec) error { return checkFits(h, ps) }
func (h *XDP) LoadKey() string                    { return "" }
func (h *XDP) Supported() error                   { return nil }

// Attach attaches with a bpf_link, so the program is swappable with
// Link.Update and pinnable.
func (h *XDP) Attach(prog *ebpf.Program, t Target) (link.Link, error) {
	flags := link.XDPDriverMode
	if h.Generic {
		flags = link.XDPGenericMode
	}
	return link.AttachXDP(link.XDPOptions{Program: prog, Interface: t.Interface.Index, Flags: flags})
}

// Alive: the interface still exists with the ifindex attached to.
func (h *XDP) Alive(l link.Link, t Target) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	x := info.XDP()
	return x != nil && x.Ifindex != 0 && int(x.Ifindex) == t.Interface.Index
}
