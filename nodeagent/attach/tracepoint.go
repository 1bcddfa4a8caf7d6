package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

func init() {
	register(Def{Kind: KindTracepoint, Programs: []ProgramFit{AnyAttach(ebpf.TracePoint)},
		PointPrefixes: []string{"tracepoint"},
		Parse: func(name string, block []byte) (Hook, error) {
			var b struct {
				Group string `json:"group"`
				Name  string `json:"name"`
			}
			err := decode(block, &b)
			return &Tracepoint{Named: Named{name}, Group: b.Group, Tracepoint: b.Name}, err
		}})
}

// KindTracepoint is the tracepoint attach block.
const KindTracepoint Kind = "tracepoint"

// Tracepoint attaches to a tracefs tracepoint (events/<group>/<name>).
type Tracepoint struct {
	Named
	Group, Tracepoint string
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
