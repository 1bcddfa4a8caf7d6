package caps_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/test/caps"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// harness runs scenarios in confined child processes. It does, with full
// root, the setup the agent never does itself on a node: the network
// namespace that plays the node's (the agent runs with hostNetwork, so the
// child is started inside it by nsenter, which needs CAP_SYS_ADMIN — the
// agent does not enter namespaces), a veth in it, and a cgroup directory
// (mkdir in the cgroup v2 root; the agent only attaches to cgroups).
type harness struct {
	exe, root, nsPath, iface, cgroup, podPID string
	runs                                     int
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	privileged.RequireBPFFS(t)
	privileged.RequireTracefs(t)
	privileged.RequireCommand(t, "setpriv")
	privileged.RequireCommand(t, "nsenter")
	privileged.RequireCommand(t, "unshare")
	privileged.RequireCommand(t, "ip")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{exe: exe, root: "/sys/fs/bpf/bpfleet-caps-" + randHex(6)}
	t.Cleanup(func() { _ = os.RemoveAll(h.root) })
	node, peer := netns.New(t), netns.New(t)
	h.iface = netns.NewVeth(t, node, "", peer, "").A
	h.nsPath = filepath.Join("/var/run/netns", node.Name)
	h.cgroup = filepath.Join(attach.CgroupRoot(), "bpfleet-caps-"+randHex(6))
	if err := os.Mkdir(h.cgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(h.cgroup) })
	pod := exec.Command("unshare", "--net", "sleep", "600")
	if err := pod.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pod.Process.Kill(); _ = pod.Wait() })
	h.podPID = strconv.Itoa(pod.Process.Pid)
	return h
}

// run runs sc in a child holding exactly capset, with a fresh pin root and
// state dir, and returns nil or the child's error output.
func (h *harness) run(t *testing.T, sc scenario, capset []string) error {
	t.Helper()
	h.runs++
	dir := fmt.Sprintf("%s/%d", h.root, h.runs)
	state := t.TempDir()
	env := []string{envScenario + "=" + sc.name, envRoot + "=" + dir, envState + "=" + state, envIface + "=" + h.iface, envCgroup + "=" + h.cgroup, envPodPID + "=" + h.podPID}
	prefix := []string{"nsenter", "--net=" + h.nsPath, "--"}
	if sc.noBPFFS {
		// A private mount namespace where /sys/fs/bpf is not bpffs any more:
		// what a node without bpffs looks like, never visible to the host.
		prefix = append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-ec",
			`while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf; done; exec "$@"`, "sh"}, prefix...)
	}
	out, took, err := confined(t, capset, env, prefix, h.exe, "-test.run=^$")
	if took > runLimit/2 {
		t.Errorf("scenario %s took %s", sc.name, took)
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// impliedBySysAdmin lists the granted capabilities the kernel also accepts
// CAP_SYS_ADMIN for (include/linux/capability.h, kernel/bpf/syscall.c):
// while CAP_SYS_ADMIN is held, removing one of them alone changes nothing.
var impliedBySysAdmin = map[string]string{
	"BPF":       "bpf_capable() is CAP_BPF || CAP_SYS_ADMIN",
	"PERFMON":   "perfmon_capable() is CAP_PERFMON || CAP_SYS_ADMIN",
	"NET_ADMIN": "bpf_net_capable() is CAP_NET_ADMIN || CAP_SYS_ADMIN",
}

// TestEachCapabilityNeeded runs every scenario with the granted set, then
// with sets missing capabilities, and checks exactly which scenarios break
// (the error each child printed, the kernel's, is logged). Every granted
// capability must break something when removed — or, for those the kernel
// lets CAP_SYS_ADMIN stand in for, break something once CAP_SYS_ADMIN is
// removed too.
func TestEachCapabilityNeeded(t *testing.T) {
	granted := grant(t)
	h := newHarness(t)
	all := make([]string, 0, len(scenarios))
	for _, sc := range scenarios {
		all = append(all, sc.name)
	}
	// needed[cap] collects the scenarios that broke without cap.
	needed := map[string][]string{}
	for _, tc := range []struct {
		name string
		// without are the capabilities removed from the grant.
		without []string
		// fail lists the scenarios that must break, in scenario order; all
		// others must pass.
		fail []string
	}{
		{name: "granted"},
		// Shadowed by CAP_SYS_ADMIN: nothing breaks.
		{name: "-BPF", without: []string{"BPF"}},
		{name: "-PERFMON", without: []string{"PERFMON"}},
		{name: "-NET_ADMIN", without: []string{"NET_ADMIN"}},
		// BPF_ENABLE_STATS and mount(2) check CAP_SYS_ADMIN only; so does
		// the perf_uprobe PMU since "perf/core: Fix perf_uprobe_init() CAP
		// check" (EACCES with CAP_PERFMON alone).
		{name: "-SYS_ADMIN", without: []string{"SYS_ADMIN"}, fail: []string{"uprobe", "stats", "mount-bpffs", "pod"}},
		// Opening a pod process's network namespace is a ptrace read
		// access check against a process holding more capabilities.
		{name: "-SYS_PTRACE", without: []string{"SYS_PTRACE"}, fail: []string{"pod"}},
		// Without CAP_SYS_ADMIN each of the others is needed on its own.
		{name: "-SYS_ADMIN-BPF", without: []string{"SYS_ADMIN", "BPF"}, fail: all},
		{name: "-SYS_ADMIN-PERFMON", without: []string{"SYS_ADMIN", "PERFMON"},
			fail: []string{"tracepoint", "raw_tp", "uprobe", "stats", "mount-bpffs", "pod"}},
		{name: "-SYS_ADMIN-NET_ADMIN", without: []string{"SYS_ADMIN", "NET_ADMIN"},
			fail: []string{"xdp", "tcx", "uprobe", "cgroup", "readopt", "stats", "mount-bpffs", "pod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			capset := caps.Without(granted, tc.without...)
			var failed []string
			for _, sc := range scenarios {
				if err := h.run(t, sc, capset); err != nil {
					failed = append(failed, sc.name)
					t.Logf("%-11s FAIL %v", sc.name, err)
				} else {
					t.Logf("%-11s ok", sc.name)
				}
			}
			if !slices.Equal(failed, tc.fail) {
				t.Errorf("with %v: failed %v, want %v", capset, failed, tc.fail)
			}
			// Only what broke beyond the run without SYS_ADMIN counts for
			// a capability removed together with it.
			if len(tc.without) > 0 {
				c := tc.without[len(tc.without)-1]
				needed[c] = append(needed[c], slices.DeleteFunc(slices.Clone(failed), func(s string) bool {
					return len(tc.without) > 1 && slices.Contains(needed["SYS_ADMIN"], s)
				})...)
			}
		})
	}
	for _, c := range granted {
		switch {
		case len(needed[c]) == 0:
			t.Errorf("removing %s broke nothing: the DaemonSet grants it for nothing this test exercises", c)
		case impliedBySysAdmin[c] != "":
			t.Logf("%-9s needed by %v once SYS_ADMIN is gone (with SYS_ADMIN held it is redundant: %s)", c, needed[c], impliedBySysAdmin[c])
		default:
			t.Logf("%-9s needed by %v", c, needed[c])
		}
	}
}
