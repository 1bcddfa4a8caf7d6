package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// attachTracepoint attaches to a tracefs tracepoint with a perf_event link.
func attachTracepoint(prog *ebpf.Program, a *v1alpha1.TracepointAttach) (link.Link, error) {
	return link.Tracepoint(a.Group, a.Name, prog, nil)
}
