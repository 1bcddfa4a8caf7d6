package attach

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/internal/probe"
)

func init() {
	register(Def{Kind: KindUprobe, Programs: []ProgramFit{AnyAttach(ebpf.Kprobe)},
		PointPrefixes: []string{"uprobe", "uretprobe"},
		Parse: func(name string, block []byte) (Hook, error) {
			h := &Uprobe{Named: Named{name}}
			var pods struct {
				Containers *struct {
					Names []string `json:"names"`
				} `json:"containers"`
			}
			if err := decode(block, h); err != nil {
				return nil, err
			}
			if err := decode(block, &pods); err != nil {
				return nil, err
			}
			if pods.Containers != nil {
				h.Pods.InPods, h.Containers = true, pods.Containers.Names
			}
			return h, nil
		}})
}

// KindUprobe is the uprobe attach block.
const KindUprobe Kind = "uprobe"

// Uprobe attaches a uprobe or uretprobe to a symbol (plus offset), or to an
// address when no symbol is given, of a binary on the node.
type Uprobe struct {
	Named
	// Path is the binary's path on the node (under Env.HostRoot).
	Path   string `json:"path"`
	Symbol string `json:"symbol"`
	Offset *int64 `json:"offset"`
	PID    *int32 `json:"pid"`
	Return bool   `json:"return"`
	// Pods, when InPods, attaches to Path inside each selected container
	// (Containers names them; empty: every container): the block's
	// containers selector, read apart.
	Pods       Pods     `json:"-"`
	Containers []string `json:"-"`
}

func (h *Uprobe) Kind() Kind { return KindUprobe }

func (h *Uprobe) Targets(env Env) ([]Target, error) {
	kind := "uprobe"
	if h.Return {
		kind = "uretprobe"
	}
	p := kind + "/" + h.Path + ":" + h.Symbol
	if h.Offset != nil {
		p += fmt.Sprintf("+%#x", *h.Offset)
	}
	if h.PID != nil {
		p += fmt.Sprintf("@%d", *h.PID)
	}
	if !h.Pods.InPods {
		return single(h, env, p), nil
	}
	var out []Target
	for _, s := range h.Pods.Scopes {
		for _, c := range s.Containers {
			if len(h.Containers) > 0 && !slices.Contains(h.Containers, c.Name) {
				continue
			}
			out = append(out, Target{Hook: h, Program: h.Program(), Kind: h.Kind(),
				Point: podPoint(kind, s, c.Name+"@"+shortID(c.ID)) + ":" + strings.TrimPrefix(p, kind+"/"), Path: filepath.Join(c.Root, h.Path)})
		}
	}
	return out, nil
}

func (h *Uprobe) Prepare(ps *ebpf.ProgramSpec) error { return checkFits(h, ps) }
func (h *Uprobe) LoadKey() string                    { return "" }
func (h *Uprobe) Supported() error                   { return probe.Uprobes() }

func (h *Uprobe) Attach(prog *ebpf.Program, t Target) (link.Link, error) {
	path := hostPath(t.HostRoot, h.Path)
	if t.Path != "" {
		path = t.Path // inside a container's root filesystem
	}
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, err
	}
	opts := &link.UprobeOptions{}
	if h.Offset != nil {
		if h.Symbol == "" {
			opts.Address = uint64(*h.Offset)
		} else {
			opts.Offset = uint64(*h.Offset)
		}
	}
	if h.PID != nil {
		opts.PID = int(*h.PID)
	}
	if h.Return {
		return ex.Uretprobe(h.Symbol, prog, opts)
	}
	return ex.Uprobe(h.Symbol, prog, opts)
}

func (h *Uprobe) Alive(link.Link, Target) bool { return true }

// hostPath is path of the node's filesystem as the agent sees it: under
// hostRoot, the node's root mounted into the agent's container (the
// DaemonSet mounts it read-only at /host), whose own image holds nothing
// but the agent.
func hostPath(hostRoot, path string) string {
	if hostRoot == "" || !filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(hostRoot, path)
}

// shortID is the first 12 characters of a container id, as runtimes print it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
