package attach

import (
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func uprobePoint(a *v1alpha1.UprobeAttach) string {
	kind := "uprobe"
	if a.Return {
		kind = "uretprobe"
	}
	p := kind + "/" + a.Path + ":" + a.Symbol
	if a.Offset != nil {
		p += fmt.Sprintf("+%#x", *a.Offset)
	}
	if a.PID != nil {
		p += fmt.Sprintf("@%d", *a.PID)
	}
	return p
}

// attachUprobe attaches a uprobe or uretprobe to a symbol (plus offset), or
// to an address when no symbol is given.
func attachUprobe(prog *ebpf.Program, a *v1alpha1.UprobeAttach, hostRoot string) (link.Link, error) {
	ex, err := link.OpenExecutable(hostPath(hostRoot, a.Path))
	if err != nil {
		return nil, err
	}
	opts := &link.UprobeOptions{}
	if a.Offset != nil {
		if a.Symbol == "" {
			opts.Address = uint64(*a.Offset)
		} else {
			opts.Offset = uint64(*a.Offset)
		}
	}
	if a.PID != nil {
		opts.PID = int(*a.PID)
	}
	if a.Return {
		return ex.Uretprobe(a.Symbol, prog, opts)
	}
	return ex.Uprobe(a.Symbol, prog, opts)
}

// hostPath is path of the node's filesystem as the agent sees it: under
// hostRoot, the node's root mounted into the agent's container (the
// DaemonSet mounts it read-only at /host), whose own image holds nothing
// but the agent.
func hostPath(hostRoot, path string) string {
	if hostRoot == "" || !filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(hostRoot, path)
}
