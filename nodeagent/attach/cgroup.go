package attach

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

func init() {
	register(Def{Kind: KindCgroup, Programs: cgroupPrograms(), Updatable: true, PointPrefixes: []string{"cgroup"},
		PolicyHooks: slices.Sorted(maps.Keys(cgroupHooks)),
		Parse: func(name string, block []byte) (Hook, error) {
			var b struct {
				Path       string    `json:"path"`
				Pods       *struct{} `json:"pods"`
				AttachType string    `json:"attachType"`
			}
			err := decode(block, &b)
			return &Cgroup{Named: Named{name}, Path: b.Path, Hook: b.AttachType, Pods: Pods{InPods: b.Pods != nil}}, err
		}})
}

// KindCgroup is the cgroup attach block: a cgroup v2 hook.
const KindCgroup Kind = "cgroup"

// CgroupHookInfo is one cgroup v2 hook: its kernel attach type and the one
// program type the kernel attaches there.
type CgroupHookInfo struct {
	AttachType ebpf.AttachType
	Program    ebpf.ProgramType
}

// cgroupHooks maps each cgroup hook of the API (the block's attachType) to
// its kernel attach type and program type.
var cgroupHooks = map[string]CgroupHookInfo{
	"ingress":     {ebpf.AttachCGroupInetIngress, ebpf.CGroupSKB},
	"egress":      {ebpf.AttachCGroupInetEgress, ebpf.CGroupSKB},
	"sock_create": {ebpf.AttachCGroupInetSockCreate, ebpf.CGroupSock},
	"connect4":    {ebpf.AttachCGroupInet4Connect, ebpf.CGroupSockAddr},
	"connect6":    {ebpf.AttachCGroupInet6Connect, ebpf.CGroupSockAddr},
	"sendmsg4":    {ebpf.AttachCGroupUDP4Sendmsg, ebpf.CGroupSockAddr},
	"sendmsg6":    {ebpf.AttachCGroupUDP6Sendmsg, ebpf.CGroupSockAddr},
	"recvmsg4":    {ebpf.AttachCGroupUDP4Recvmsg, ebpf.CGroupSockAddr},
	"recvmsg6":    {ebpf.AttachCGroupUDP6Recvmsg, ebpf.CGroupSockAddr},
	"sock_ops":    {ebpf.AttachCGroupSockOps, ebpf.SockOps},
	"device":      {ebpf.AttachCGroupDevice, ebpf.CGroupDevice},
	"sysctl":      {ebpf.AttachCGroupSysctl, ebpf.CGroupSysctl},
	"getsockopt":  {ebpf.AttachCGroupGetsockopt, ebpf.CGroupSockopt},
	"setsockopt":  {ebpf.AttachCGroupSetsockopt, ebpf.CGroupSockopt},
}

func cgroupPrograms() []ProgramFit {
	var out []ProgramFit
	seen := map[ebpf.ProgramType]bool{}
	for _, h := range cgroupHooks {
		if !seen[h.Program] {
			seen[h.Program] = true
			out = append(out, AnyAttach(h.Program))
		}
	}
	return out
}

// CgroupHook returns a cgroup hook by its API name; ok is false for a hook
// the API does not define.
func CgroupHook(name string) (CgroupHookInfo, bool) {
	h, ok := cgroupHooks[name]
	return h, ok
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
	c, ok := CgroupHook(h.Hook)
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
	c, _ := CgroupHook(h.Hook)
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

// policyName: cgroup/<hook>.
func (h *Cgroup) policyName() string { return string(KindCgroup) + "/" + h.Hook }

// fits: exactly the program type of the hook.
func (h *Cgroup) fits(t ebpf.ProgramType, _ ebpf.AttachType) bool {
	c, ok := CgroupHook(h.Hook)
	return ok && c.Program == t
}
