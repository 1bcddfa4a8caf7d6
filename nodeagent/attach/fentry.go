package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// prepareTracing sets the kernel function a fentry/fexit program attaches to
// (resolved against the kernel's BTF at load).
func prepareTracing(ps *ebpf.ProgramSpec, function string, at ebpf.AttachType, mismatch func() error) error {
	if ps.Type != ebpf.Tracing || ps.AttachType != at {
		return mismatch()
	}
	ps.AttachTo = function
	return nil
}

// attachTracing attaches a fentry or fexit program through its BTF
// trampoline, to the function it was loaded for.
func attachTracing(prog *ebpf.Program) (link.Link, error) {
	return link.AttachTracing(link.TracingOptions{Program: prog})
}
