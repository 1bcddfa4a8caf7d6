package attach

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

func init() {
	for _, exit := range []bool{false, true} {
		k, at := KindFentry, ebpf.AttachTraceFEntry
		if exit {
			k, at = KindFexit, ebpf.AttachTraceFExit
		}
		register(Def{Kind: k, Programs: []ProgramFit{{Type: ebpf.Tracing, AttachType: at}},
			PointPrefixes: []string{string(k)},
			Parse: func(name string, block []byte) (Hook, error) {
				return decodeHook(&Fentry{Named: Named{name}, Exit: exit}, block)
			}})
	}
}

// The fentry and fexit attach blocks.
const (
	KindFentry Kind = "fentry"
	KindFexit  Kind = "fexit"
)

// Fentry attaches at the entry of a kernel function, or with Exit at its
// return, through its BTF trampoline.
type Fentry struct {
	Named
	Function string `json:"function"`
	// Exit makes it a fexit hook (the block's kind, not a field of it).
	Exit bool `json:"-"`
}

func (h *Fentry) Kind() Kind {
	if h.Exit {
		return KindFexit
	}
	return KindFentry
}

func (h *Fentry) Targets(env Env) ([]Target, error) {
	return single(h, env, string(h.Kind())+"/"+h.Function), nil
}

// Prepare sets the kernel function the program attaches to (resolved
// against the kernel's BTF at load).
func (h *Fentry) Prepare(ps *ebpf.ProgramSpec) error {
	if err := checkFits(h, ps); err != nil {
		return err
	}
	ps.AttachTo = h.Function
	return nil
}

// LoadKey: the program is loaded for its function.
func (h *Fentry) LoadKey() string  { return h.Name + "/" + string(h.Kind()) + "/" + h.Function }
func (h *Fentry) Supported() error { return nil }

// Attach attaches to the function the program was loaded for.
func (h *Fentry) Attach(prog *ebpf.Program, _ Target) (link.Link, error) {
	return link.AttachTracing(link.TracingOptions{Program: prog})
}
func (h *Fentry) Alive(link.Link, Target) bool { return true }
