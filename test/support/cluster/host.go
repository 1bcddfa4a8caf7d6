package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfleet/bpfleet/cmd/localenv/orphans"
)

// hostState is what the cluster changes on the host and must put back: it is
// written before the first change and removed once restored, so a start
// after a crash restores the values from before the crashed run, not the
// ones its kubelet left.
type hostState struct {
	// Sysctls the kubelet, kube-proxy and the bridge plugin set.
	Sysctls map[string]string `json:"sysctls"`
	// MadeShared are mount points the harness made shared (or mounted) for
	// Bidirectional mount propagation.
	MadeShared []string `json:"madeShared"`
	// Mounted are filesystems the harness mounted itself.
	Mounted []string `json:"mounted"`
	// Created are host directories the kubelet or CNI create that did not
	// exist before.
	Created []string `json:"created"`
}

// touchedSysctls are every sysctl a kubelet (setupKernelTunables), the
// bridge plugin or kube-proxy may write.
var touchedSysctls = []string{
	"vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
	"net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables",
}

// hostDirs the kubelet and the CNI library create on any node.
// /var/lib/kubelet/device-plugins is the kubelet's whatever its root dir;
// /var/lib/bpfleet is the agent DaemonSet's hostPath for its records and
// bundle cache.
var hostDirs = []string{"/var/log/pods", "/var/log/containers", "/var/lib/cni", "/run/containerd", "/etc/cni",
	"/var/lib/kubelet", "/var/lib/bpfleet"}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

func (c *Cluster) saveHostState() error {
	hs := hostState{Sysctls: map[string]string{}}
	for _, s := range touchedSysctls {
		if b, err := os.ReadFile(sysctlPath(s)); err == nil {
			hs.Sysctls[s] = strings.TrimSpace(string(b))
		}
	}
	for _, d := range hostDirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			hs.Created = append(hs.Created, d)
		}
	}
	for _, fs := range []struct {
		path, typ string
	}{{"/sys/fs/bpf", "bpf"}, {"/sys/kernel/tracing", "tracefs"}} {
		mi, ok := mountAt(fs.path)
		if !ok {
			if err := unix.Mount(fs.typ, fs.path, fs.typ, 0, ""); err != nil {
				return fmt.Errorf("mount %s: %w", fs.path, err)
			}
			hs.Mounted = append(hs.Mounted, fs.path)
			mi, _ = mountAt(fs.path)
		}
		if !mi.shared {
			hs.MadeShared = append(hs.MadeShared, fs.path)
		}
	}
	if err := c.writeHostState(hs); err != nil {
		return err
	}
	c.before = hs
	// Pod volumes with Bidirectional propagation need shared mounts; a host
	// without systemd mounts everything private.
	for _, p := range hs.MadeShared {
		if err := unix.Mount("", p, "", unix.MS_SHARED, ""); err != nil {
			return fmt.Errorf("make %s a shared mount: %w", p, err)
		}
	}
	return nil
}

func (c *Cluster) writeHostState(hs hostState) error {
	b, err := json.MarshalIndent(hs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode host state: %w", err)
	}
	if err := os.WriteFile(c.dirs.hostState, b, 0o600); err != nil {
		return fmt.Errorf("write host state: %w", err)
	}
	return nil
}

// restoreHostState puts back what saveHostState recorded, if anything.
func (c *Cluster) restoreHostState() error {
	b, err := os.ReadFile(c.dirs.hostState)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read host state: %w", err)
	}
	var hs hostState
	if err := json.Unmarshal(b, &hs); err != nil {
		return fmt.Errorf("decode host state %s: %w", c.dirs.hostState, err)
	}
	var errs []error
	for name, v := range hs.Sysctls {
		if cur, err := os.ReadFile(sysctlPath(name)); err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(sysctlPath(name), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", name, v, err))
		}
	}
	for _, p := range hs.MadeShared {
		if slices.Contains(hs.Mounted, p) {
			continue
		}
		if err := unix.Mount("", p, "", unix.MS_PRIVATE, ""); err != nil {
			errs = append(errs, fmt.Errorf("make %s private again: %w", p, err))
		}
	}
	for _, p := range hs.Mounted {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	for _, d := range hs.Created {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.Remove(c.dirs.hostState))
	}
	return errors.Join(errs...)
}

// cleanHost removes everything a cluster on this state dir may have left:
// its processes (the recorded children, then any process naming the state
// dir, such as container shims), the pods' processes and cgroups, mounts
// under the state dir, the bridge, the node's address interface and
// kube-proxy's tables, then puts the host's settings back. It is how Stop
// ends and how Start begins, so a harness killed with SIGKILL is cleaned up
// by the next start.
func (c *Cluster) cleanHost() error {
	var errs []error
	if _, err := orphans.Reap(c.dirs.pidFile); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, killNaming(c.dirs.state), killCgroupTree("kubepods"))
	errs = append(errs, unmountUnder(c.dirs.state))
	for _, link := range []string{c.opts.Bridge, c.opts.NodeInterface} {
		if _, err := os.Stat("/sys/class/net/" + link); err == nil {
			if out, err := exec.Command("ip", "link", "delete", link).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w: %s", link, err, out))
			}
		}
	}
	errs = append(errs, cleanNetfilter())
	// Shims keep their sockets here whatever containerd's state dir is.
	for _, d := range []string{"/run/containerd/s", "/run/containerd/runc"} {
		errs = append(errs, os.RemoveAll(d))
	}
	errs = append(errs, removeCNICache())
	errs = append(errs, c.restoreHostState())
	return errors.Join(errs...)
}

// killNaming SIGKILLs every process whose command line contains dir.
func killNaming(dir string) error {
	for range 50 {
		pids := processes(func(pid int, cmdline string) bool { return strings.Contains(cmdline, dir) })
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kill processes of %s: still running after 5 s", dir)
}

func processes(match func(pid int, cmdline string) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !orphans.Alive(pid) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if match(pid, strings.ReplaceAll(string(b), "\x00", " ")) {
			out = append(out, pid)
		}
	}
	return out
}

// cgroupRoots are the mount points of every cgroup hierarchy, v1 and v2.
func cgroupRoots() []string {
	var roots []string
	for _, m := range mounts() {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			roots = append(roots, m.point)
		}
	}
	return roots
}

// killCgroupTree kills every process under <hierarchy>/name in every cgroup
// hierarchy and removes the cgroups, deepest first.
func killCgroupTree(name string) error {
	var errs []error
	for _, root := range cgroupRoots() {
		top := filepath.Join(root, name)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := removeCgroup(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func removeCgroup(dir string) error {
	for range 100 {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: still busy after 5 s", dir)
}

type mountInfo struct {
	point, fstype string
	shared        bool
}

// mounts reads this process's mount table in mount order.
func mounts() []mountInfo {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		m := mountInfo{point: unescapeMount(fields[4]), fstype: fields[sep+1]}
		for _, opt := range fields[6:sep] {
			m.shared = m.shared || strings.HasPrefix(opt, "shared:")
		}
		out = append(out, m)
	}
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func mountAt(path string) (mountInfo, bool) {
	var found mountInfo
	ok := false
	for _, m := range mounts() {
		if m.point == path {
			found, ok = m, true // the last one is the top of the stack
		}
	}
	return found, ok
}

// unmountUnder lazily unmounts every mount at or below dir, newest first.
func unmountUnder(dir string) error {
	for range 10 {
		var under []string
		for _, m := range mounts() {
			if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
				under = append(under, m.point)
			}
		}
		if len(under) == 0 {
			return nil
		}
		for i := len(under) - 1; i >= 0; i-- {
			_ = unix.Unmount(under[i], unix.MNT_DETACH)
		}
	}
	return fmt.Errorf("unmount below %s: mounts remain", dir)
}

// cleanNetfilter removes kube-proxy's nftables tables and the chains the
// kubelet and the portmap plugin add to iptables.
func cleanNetfilter() error {
	var errs []error
	if nft, err := exec.LookPath("nft"); err == nil {
		for _, family := range []string{"ip", "ip6"} {
			out, err := exec.Command(nft, "list", "tables", family).Output()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) == 3 && f[0] == "table" && (f[2] == "kube-proxy" || strings.HasPrefix(f[2], "cni")) {
					if out, err := exec.Command(nft, "delete", "table", family, f[2]).CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("delete nftables table %s %s: %w: %s", family, f[2], err, out))
					}
				}
			}
		}
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		bin, err := exec.LookPath(ipt)
		if err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) >= 2 && f[0] == "-N" && (strings.HasPrefix(f[1], "KUBE-") || strings.HasPrefix(f[1], "CNI-")) {
					chains = append(chains, f[1])
				}
				// Jumps into those chains from built-in ones.
				if len(f) >= 4 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && !strings.HasPrefix(f[1], "CNI-") {
					if j := slices.Index(f, "-j"); j > 0 && j+1 < len(f) && (strings.HasPrefix(f[j+1], "KUBE-") || strings.HasPrefix(f[j+1], "CNI-")) {
						_ = exec.Command(bin, append([]string{"-t", table, "-D"}, f[1:]...)...).Run()
					}
				}
			}
			for _, ch := range chains {
				_ = exec.Command(bin, "-t", table, "-F", ch).Run()
			}
			for _, ch := range chains {
				if out, err := exec.Command(bin, "-t", table, "-X", ch).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("delete %s chain %s/%s: %w: %s", ipt, table, ch, err, out))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// removeCNICache drops the CNI library's cached results and host-local's
// leases for the harness's network.
func removeCNICache() error {
	matches, _ := filepath.Glob("/var/lib/cni/results/" + cniNetwork + "-*")
	var errs []error
	for _, m := range matches {
		errs = append(errs, os.Remove(m))
	}
	return errors.Join(errs...)
}

// Leftovers lists what a stopped cluster left on the host: processes or
// mounts of its state dir, pods' cgroups, its interfaces, netfilter tables
// and chains, sysctls or mount propagation that differ from before Start.
// Empty after a clean Stop.
func (c *Cluster) Leftovers() []string {
	var left []string
	if pids := processes(func(_ int, cmdline string) bool { return strings.Contains(cmdline, c.dirs.state) }); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes %v", pids))
	}
	for _, m := range mounts() {
		if strings.HasPrefix(m.point, c.dirs.state) {
			left = append(left, "mount "+m.point)
		}
	}
	for _, root := range cgroupRoots() {
		if _, err := os.Stat(filepath.Join(root, "kubepods")); err == nil {
			left = append(left, "cgroup "+filepath.Join(root, "kubepods"))
		}
	}
	for _, link := range []string{c.opts.Bridge, c.opts.NodeInterface} {
		if _, err := os.Stat("/sys/class/net/" + link); err == nil {
			left = append(left, "interface "+link)
		}
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil && strings.Contains(string(out), "kube-proxy") {
		left = append(left, "nftables table kube-proxy")
	}
	if out, err := exec.Command("iptables-save").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, ":KUBE-") || strings.HasPrefix(line, ":CNI-") {
				left = append(left, "iptables chain "+strings.Fields(line)[0][1:])
			}
		}
	}
	for name, v := range c.before.Sysctls {
		if cur, err := os.ReadFile(sysctlPath(name)); err == nil && strings.TrimSpace(string(cur)) != v {
			left = append(left, fmt.Sprintf("sysctl %s=%s (was %s)", name, strings.TrimSpace(string(cur)), v))
		}
	}
	for _, p := range c.before.MadeShared {
		if m, ok := mountAt(p); ok && m.shared {
			left = append(left, p+" still a shared mount")
		}
	}
	for _, d := range c.before.Created {
		if _, err := os.Stat(d); err == nil {
			left = append(left, "directory "+d)
		}
	}
	if _, err := os.Stat(c.dirs.hostState); err == nil {
		left = append(left, "host state record "+c.dirs.hostState)
	}
	return left
}

// hostLockPath is the lock one cluster holds on this host from Start to
// Stop: clusters share the node's interface and address, fixed ports and
// kube-proxy's tables, and Start begins by cleaning up whatever an earlier
// run left. Without it, a second Start (a suite's TestMain run with
// `-run XXX`, say) deleted the node's interface under a running suite.
const hostLockPath = "/run/bpfleet-cluster.lock"

// lockHost takes the lock at path (hostLockPath), waiting (and saying so
// on out) while another cluster holds it, until ctx ends. The lock goes
// with the process: a harness killed with SIGKILL releases it.
func lockHost(ctx context.Context, path string, out io.Writer) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open host lock: %w", err)
	}
	for said := false; ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !said {
			fmt.Fprintf(out, "another bpfleet test cluster runs on this host (%s held); waiting for it to stop\n", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
