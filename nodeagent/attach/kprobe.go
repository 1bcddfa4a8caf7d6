package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/internal/probe"
)

func init() {
	register(Def{Kind: KindKprobe, Programs: []ProgramFit{AnyAttach(ebpf.Kprobe)},
		PointPrefixes: []string{"kprobe", "kretprobe"},
		Parse:         func(name string, block []byte) (Hook, error) { return decodeHook(&Kprobe{Named: Named{name}}, block) }})
}

// KindKprobe is the kprobe attach block.
const KindKprobe Kind = "kprobe"

// Kprobe attaches a kprobe or kretprobe to a kernel function.
type Kprobe struct {
	Named
	Function string `json:"function"`
	Return   bool   `json:"return"`
}

func (h *Kprobe) Kind() Kind { return KindKprobe }
func (h *Kprobe) Targets(env Env) ([]Target, error) {
	if h.Return {
		return single(h, env, "kretprobe/"+h.Function), nil
	}
	return single(h, env, "kprobe/"+h.Function), nil
}
func (h *Kprobe) Prepare(ps *ebpf.ProgramSpec) error { return checkFits(h, ps) }
func (h *Kprobe) LoadKey() string                    { return "" }
func (h *Kprobe) Supported() error                   { return probe.Kprobes() }

// Attach: kernels built without CONFIG_KPROBES return an error wrapping
// ErrNotSupported or os.ErrNotExist.
func (h *Kprobe) Attach(prog *ebpf.Program, _ Target) (link.Link, error) {
	if h.Return {
		return link.Kretprobe(h.Function, prog, nil)
	}
	return link.Kprobe(h.Function, prog, nil)
}
func (h *Kprobe) Alive(link.Link, Target) bool { return true }
