package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/internal/probe"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

func init() {
	register(Def{Kind: KindTCX, Programs: []ProgramFit{AnyAttach(ebpf.SchedCLS)},
		Updatable: true, PerInterface: true, PointPrefixes: []string{"tcx-ingress", "tcx-egress"},
		PolicyHooks: []string{"ingress", "egress"},
		Parse: func(name string, block []byte) (Hook, error) {
			var b struct {
				Interfaces interfaceBlock `json:"interfaces"`
				Pods       *struct{}      `json:"pods"`
				Direction  string         `json:"direction"`
				Order      string         `json:"order"`
			}
			err := decode(block, &b)
			return &TCX{Named: Named{name}, Interfaces: b.Interfaces.selector(), Egress: b.Direction == "egress",
				First: b.Order == "first", Pods: Pods{InPods: b.Pods != nil}}, err
		}})
}

// KindTCX is the tc attach block, attached with tcx.
const KindTCX Kind = "tc"

// TCX attaches a sched_cls program to network interfaces with tcx.
type TCX struct {
	Named
	// Interfaces selects the interfaces.
	Interfaces netwatch.Selector
	// Egress attaches on egress instead of ingress.
	Egress bool
	// First runs the program before those already on the hook (default:
	// after), including programs bpfleet does not manage.
	First bool
	// Pods, when InPods, picks the interfaces inside each pod instead.
	Pods Pods
}

func (h *TCX) Kind() Kind { return KindTCX }

func (h *TCX) Targets(env Env) ([]Target, error) {
	dir := "ingress"
	if h.Egress {
		dir = "egress"
	}
	if h.Pods.InPods {
		return perPodInterface(h, h.Pods, h.Interfaces, "tcx-"+dir)
	}
	return perInterface(h, env, h.Interfaces, func(ifname string) string { return "tcx-" + dir + "/" + ifname })
}

func (h *TCX) Prepare(ps *ebpf.ProgramSpec) error { return checkFits(h, ps) }
func (h *TCX) LoadKey() string                    { return "" }
func (h *TCX) Supported() error                   { return probe.TCX() }

func (h *TCX) Attach(prog *ebpf.Program, t Target) (link.Link, error) {
	at := ebpf.AttachTCXIngress
	if h.Egress {
		at = ebpf.AttachTCXEgress
	}
	anchor := link.Tail()
	if h.First {
		anchor = link.Head()
	}
	return link.AttachTCX(link.TCXOptions{Interface: t.Interface.Index, Program: prog, Attach: at, Anchor: anchor})
}

// Alive: the interface still exists with the ifindex attached to.
func (h *TCX) Alive(l link.Link, t Target) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	x := info.TCX()
	return x != nil && x.Ifindex != 0 && int(x.Ifindex) == t.Interface.Index
}

// policyName: tc/ingress or tc/egress.
func (h *TCX) policyName() string {
	if h.Egress {
		return string(KindTCX) + "/egress"
	}
	return string(KindTCX) + "/ingress"
}
