package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

func xdpPoint(a *v1alpha1.XDPAttach, ifname string) string {
	if a.Mode == v1alpha1.XDPModeGeneric {
		return "xdp-generic/" + ifname
	}
	return "xdp/" + ifname
}

// attachXDP attaches in driver (native, the default) or generic mode with a
// bpf_link, so the program is swappable with Link.Update and pinnable.
func attachXDP(prog *ebpf.Program, ifc netwatch.Interface, a *v1alpha1.XDPAttach) (link.Link, error) {
	flags := link.XDPDriverMode
	if a.Mode == v1alpha1.XDPModeGeneric {
		flags = link.XDPGenericMode
	}
	return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: flags})
}
