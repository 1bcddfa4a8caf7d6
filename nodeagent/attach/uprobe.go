package attach

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func uprobePoint(a *v1alpha1.UprobeAttach) string {
	kind := "uprobe"
	if a.Return {
		kind = "uretprobe"
	}
	p := kind + "/" + a.Path + ":" + a.Symbol
	if a.Offset != nil {
		p += fmt.Sprintf("+%#x", *a.Offset)
	}
	if a.PID != nil {
		p += fmt.Sprintf("@%d", *a.PID)
	}
	return p
}

// attachUprobe attaches a uprobe or uretprobe to a symbol (plus offset), or
// to an address when no symbol is given.
func attachUprobe(prog *ebpf.Program, a *v1alpha1.UprobeAttach) (link.Link, error) {
	ex, err := link.OpenExecutable(HostPath(a.Path))
	if err != nil {
		return nil, err
	}
	opts := &link.UprobeOptions{}
	if a.Offset != nil {
		if a.Symbol == "" {
			opts.Address = uint64(*a.Offset)
		} else {
			opts.Offset = uint64(*a.Offset)
		}
	}
	if a.PID != nil {
		opts.PID = int(*a.PID)
	}
	if a.Return {
		return ex.Uretprobe(a.Symbol, prog, opts)
	}
	return ex.Uprobe(a.Symbol, prog, opts)
}

// HostPath is where the agent finds path of the node's filesystem. An agent
// in a container (hostPID, as the DaemonSet runs it) sees its image's files
// at path, and the node's through /proc/1/root, the root of the node's init
// process; an agent in the node's own mount namespace uses path as it is.
func HostPath(path string) string {
	return hostPath(path, sameMountNamespace("/proc/self/ns/mnt", "/proc/1/ns/mnt"))
}

func hostPath(path string, sameNS bool) string {
	if sameNS || !filepath.IsAbs(path) {
		return path
	}
	return filepath.Join("/proc/1/root", path)
}

// sameMountNamespace tells whether both links name one mount namespace. When
// pid 1's cannot be read (no hostPID, or no privilege), the agent's own is
// the only one it can use.
func sameMountNamespace(self, init string) bool {
	a, errA := os.Readlink(self)
	b, errB := os.Readlink(init)
	return errA != nil || errB != nil || a == b
}
