package attach

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bpfleet/bpfleet/bundles/format"
)

func init() {
	register(KindCgroup, kindInfo{updatable: true, pointPrefixes: []string{"cgroup"}})
}

// CgroupRoot returns where the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup on unified hosts, else the shortest cgroup2 mount point
// (hybrid hosts mount it at /sys/fs/cgroup/unified; an agent with the
// node's root at /host sees it there too).
var CgroupRoot = sync.OnceValue(func() string {
	const def = "/sys/fs/cgroup"
	var st unix.Statfs_t
	if unix.Statfs(def, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return def
	}
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return def
	}
	return cgroup2Mount(string(b), def)
})

// cgroup2Mount is the shortest cgroup2 mount point in a mounts table, or def.
func cgroup2Mount(mounts, def string) string {
	found := ""
	for _, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" && (found == "" || len(f[1]) < len(found)) {
			found = f[1]
		}
	}
	if found == "" {
		return def
	}
	return found
}

// CgroupPath makes a spec's cgroup path absolute (relative paths are under
// CgroupRoot) and clean.
func CgroupPath(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(CgroupRoot(), p)
}

// Cgroup attaches to a cgroup v2 hook of a cgroup directory.
type Cgroup struct {
	Named
	// Path is the cgroup directory (relative: under CgroupRoot).
	Path string
	// Hook is the cgroup hook as the API names it (ingress, connect4, ...).
	Hook string
	// Pods, when InPods, attaches to each pod's cgroup instead of Path.
	Pods Pods
}

func (h *Cgroup) Kind() Kind { return KindCgroup }
func (h *Cgroup) Targets(env Env) ([]Target, error) {
	if !h.Pods.InPods {
		return single(h, env, "cgroup/"+h.Hook+":"+CgroupPath(h.Path)), nil
	}
	out := make([]Target, 0, len(h.Pods.Scopes))
	for _, s := range h.Pods.Scopes {
		if s.CgroupDir == "" {
			continue
		}
		out = append(out, Target{Hook: h, Program: h.Program(), Kind: h.Kind(), Point: podPoint("cgroup", s, h.Hook), Path: s.CgroupDir})
	}
	return out, nil
}

// Prepare checks the program type against the hook (each hook takes
// exactly one program type) and sets the expected attach type the kernel
// enforces at attach time.
func (h *Cgroup) Prepare(ps *ebpf.ProgramSpec) error {
	c, ok := format.CgroupHook(h.Hook)
	if !ok {
		return fmt.Errorf("unknown cgroup attach type %q: %w", h.Hook, ErrNoAttachBlock)
	}
	if c.Program != ps.Type {
		return mismatch(h, ps)
	}
	ps.AttachType = c.AttachType
	return nil
}

// LoadKey: the expected attach type is fixed at load.
func (h *Cgroup) LoadKey() string  { return h.Name + "/cgroup/" + h.Hook }
func (h *Cgroup) Supported() error { return nil }

// Attach attaches with a bpf_link (pinnable, updatable).
func (h *Cgroup) Attach(prog *ebpf.Program, t Target) (link.Link, error) {
	c, _ := format.CgroupHook(h.Hook)
	path := CgroupPath(h.Path)
	if t.Path != "" {
		path = t.Path
	}
	return link.AttachCgroup(link.CgroupOptions{
		Path:    path,
		Attach:  c.AttachType,
		Program: prog,
	})
}

// Alive: the cgroup still exists.
func (h *Cgroup) Alive(l link.Link, _ Target) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	c := info.Cgroup()
	return c == nil || c.CgroupId != 0
}
