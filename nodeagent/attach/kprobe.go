package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// attachKprobe attaches a kprobe or kretprobe. Kernels built without
// CONFIG_KPROBES return an error wrapping ErrNotSupported or os.ErrNotExist.
func attachKprobe(prog *ebpf.Program, a *v1alpha1.KprobeAttach) (link.Link, error) {
	if a.Return {
		return link.Kretprobe(a.Function, prog, nil)
	}
	return link.Kprobe(a.Function, prog, nil)
}
