package attach

import (
	"fmt"

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
func attachUprobe(prog *ebpf.Program, a *v1alpha1.UprobeAttach) (link.Link, error) {
	ex, err := link.OpenExecutable(a.Path)
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
