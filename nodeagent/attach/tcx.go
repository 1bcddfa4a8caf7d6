package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

func tcxPoint(a *v1alpha1.TCAttach, ifname string) string {
	return "tcx-" + string(a.Direction) + "/" + ifname
}

// attachTCX attaches with tcx, first or last (default) among the programs
// already on the hook, including those bpfleet does not manage.
func attachTCX(prog *ebpf.Program, ifc netwatch.Interface, a *v1alpha1.TCAttach) (link.Link, error) {
	at := ebpf.AttachTCXIngress
	if a.Direction == v1alpha1.TCEgress {
		at = ebpf.AttachTCXEgress
	}
	anchor := link.Tail()
	if a.Order == v1alpha1.TCOrderFirst {
		anchor = link.Head()
	}
	return link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: at, Anchor: anchor})
}
