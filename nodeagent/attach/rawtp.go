package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// prepareRawTP accepts raw_tp programs, and tp_btf (tracing) programs whose
// target it sets to the spec's tracepoint.
func prepareRawTP(ps *ebpf.ProgramSpec, a *v1alpha1.RawTracepointAttach, mismatch func() error) error {
	switch {
	case ps.Type == ebpf.RawTracepoint || ps.Type == ebpf.RawTracepointWritable:
		return nil
	case ps.Type == ebpf.Tracing && ps.AttachType == ebpf.AttachTraceRawTp:
		ps.AttachTo = a.Name
		return nil
	}
	return mismatch()
}

// attachRawTP attaches a raw_tp program by tracepoint name, or a tp_btf
// program to the tracepoint it was loaded for.
func attachRawTP(prog *ebpf.Program, a *v1alpha1.RawTracepointAttach) (link.Link, error) {
	if prog.Type() == ebpf.Tracing {
		return link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
	}
	return link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.Name, Program: prog})
}
