package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

func init() {
	register(Def{Kind: KindTracepoint, Programs: []ProgramFit{AnyAttach(ebpf.TracePoint)},
		PointPrefixes: []string{"tracepoint"},
		Parse: func(name string, block []byte) (Hook, error) {
			return decodeHook(&Tracepoint{Named: Named{name}}, block)
		}})
}

// KindTracepoint is the tracepoint attach block.
const KindTracepoint Kind = "tracepoint"

// Tracepoint attaches to a tracefs tracepoint (events/<group>/<name>).
type Tracepoint struct {
	Named
	Group      string `json:"group"`
	Tracepoint string `json:"name"`
}

func (h *Tracepoint) Kind() Kind { return KindTracepoint }
func (h *Tracepoint) Targets(env Env) ([]Target, error) {
	return single(h, env, "tracepoint/"+h.Group+"/"+h.Tracepoint), nil
}
func (h *Tracepoint) Prepare(ps *ebpf.ProgramSpec) error { return checkFits(h, ps) }
func (h *Tracepoint) LoadKey() string                    { return "" }
func (h *Tracepoint) Supported() error                   { return nil }

// Attach attaches with a perf_event link.
func (h *Tracepoint) Attach(prog *ebpf.Program, _ Target) (link.Link, error) {
	return link.Tracepoint(h.Group, h.Tracepoint, prog, nil)
}
func (h *Tracepoint) Alive(link.Link, Target) bool { return true }
