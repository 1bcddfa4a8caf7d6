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

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

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

// prepareCgroup checks the program type against the hook and sets the
// expected attach type the kernel enforces at attach time.
func prepareCgroup(ps *ebpf.ProgramSpec, a *v1alpha1.CgroupAttach, mismatch func() error) error {
	at, prog, ok := hooks.CgroupHook(a.AttachType)
	if !ok {
		return fmt.Errorf("unknown cgroup attach type %q: %w", a.AttachType, ErrNoAttachBlock)
	}
	if prog != ps.Type {
		return mismatch()
	}
	ps.AttachType = at
	return nil
}

// attachCgroup attaches with a bpf_link (pinnable, updatable).
func attachCgroup(prog *ebpf.Program, a *v1alpha1.CgroupAttach) (link.Link, error) {
	at, _, _ := hooks.CgroupHook(a.AttachType)
	return link.AttachCgroup(link.CgroupOptions{
		Path:    CgroupPath(a.Path),
		Attach:  at,
		Program: prog,
	})
}
