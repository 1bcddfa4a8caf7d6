package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

func init() {
	register(Def{Kind: KindRawTP, Programs: []ProgramFit{AnyAttach(ebpf.RawTracepoint), AnyAttach(ebpf.RawTracepointWritable),
		{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp}}, // tp_btf
		PointPrefixes: []string{"raw_tp"},
		Parse: func(name string, block []byte) (Hook, error) {
			return decodeHook(&RawTracepoint{Named: Named{name}}, block)
		}})
}

// KindRawTP is the rawTracepoint attach block: raw_tp, or tp_btf for
// BTF-enabled programs.
const KindRawTP Kind = "rawTracepoint"

// RawTracepoint attaches a raw_tp program to a tracepoint by name, or a
// tp_btf (BTF tracing) program to the tracepoint it was loaded for.
type RawTracepoint struct {
	Named
	Tracepoint string `json:"name"`
}

func (h *RawTracepoint) Kind() Kind { return KindRawTP }
func (h *RawTracepoint) Targets(env Env) ([]Target, error) {
	return single(h, env, "raw_tp/"+h.Tracepoint), nil
}

// Prepare accepts raw_tp programs, and tp_btf programs whose target it sets
// to the block's tracepoint.
func (h *RawTracepoint) Prepare(ps *ebpf.ProgramSpec) error {
	if err := checkFits(h, ps); err != nil {
		return err
	}
	if ps.Type == ebpf.Tracing {
		ps.AttachTo = h.Tracepoint
	}
	return nil
}

// LoadKey: a tp_btf program is loaded for its tracepoint.
func (h *RawTracepoint) LoadKey() string  { return h.Name + "/raw_tp/" + h.Tracepoint }
func (h *RawTracepoint) Supported() error { return nil }

func (h *RawTracepoint) Attach(prog *ebpf.Program, _ Target) (link.Link, error) {
	if prog.Type() == ebpf.Tracing {
		return link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
	}
	return link.AttachRawTracepoint(link.RawTracepointOptions{Name: h.Tracepoint, Program: prog})
}
func (h *RawTracepoint) Alive(link.Link, Target) bool { return true }
