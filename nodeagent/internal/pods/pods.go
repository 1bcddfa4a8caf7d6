// Package pods finds what the kernel knows of a pod on this node: its
// cgroup v2 directories and their ids, the processes in them, its network
// namespace, and a container's root filesystem. It reads only the cgroup
// tree the kubelet makes and /proc, so it needs no container runtime socket
// and works the same under any CRI runtime and either cgroup driver.
package pods

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotRunning: the pod or container has no cgroup or no live process on
// this node (not started yet, or gone).
var ErrNotRunning = errors.New("no running process")

// ErrHostNetwork: the pod shares the node's network namespace, which a pod
// target must never reach.
var ErrHostNetwork = errors.New("pod uses the node's network namespace")

var (
	// cgroupfs driver: kubepods[/<qos>]/pod<uid>/<container id>.
	cgroupfsPod = regexp.MustCompile(`^pod([0-9a-f-]{36})$`)
	// systemd driver: kubepods[-<qos>]-pod<uid with _>.slice/<runtime>-<id>.scope.
	systemdPod       = regexp.MustCompile(`^kubepods(?:-[a-z]+)?-pod([0-9a-f_]{36})\.slice$`)
	systemdContainer = regexp.MustCompile(`^(?:cri-containerd|crio|docker)-([0-9a-f]{64})\.scope$`)
	containerDir     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Finder looks pods up under a cgroup v2 mount and a /proc.
type Finder struct {
	// CgroupRoot is the cgroup v2 mount (/sys/fs/cgroup, or
	// /sys/fs/cgroup/unified on hybrid hosts).
	CgroupRoot string
	// Proc is the procfs mount; empty means /proc.
	Proc string
}

// Container is one container's cgroup.
type Container struct {
	// ID is the runtime's container id (64 hex digits).
	ID string
	// Dir is its cgroup directory.
	Dir string
	// CgroupID is the directory's inode number, which
	// bpf_get_current_cgroup_id returns for its processes.
	CgroupID uint64
}

// Pod is one pod's cgroup and its containers' (the sandbox's included).
type Pod struct {
	UID        string
	Dir        string
	Containers []Container
}

// Container returns the container with id, or false.
func (p Pod) Container(id string) (Container, bool) {
	for _, c := range p.Containers {
		if c.ID == id {
			return c, true
		}
	}
	return Container{}, false
}

// ParseCgroupPath finds the pod UID and container id in a kubelet cgroup
// path of either driver; ok is false outside every pod.
func ParseCgroupPath(path string) (podUID, containerID string, ok bool) {
	for _, part := range strings.Split(path, "/") {
		switch {
		case cgroupfsPod.MatchString(part):
			podUID = cgroupfsPod.FindStringSubmatch(part)[1]
		case systemdPod.MatchString(part):
			podUID = strings.ReplaceAll(systemdPod.FindStringSubmatch(part)[1], "_", "-")
		case podUID != "" && containerDir.MatchString(part):
			containerID = part
		case podUID != "" && systemdContainer.MatchString(part):
			containerID = systemdContainer.FindStringSubmatch(part)[1]
		}
	}
	return podUID, containerID, podUID != ""
}

// podDirs are where the kubelet puts a pod's cgroup, by QoS class and
// driver, relative to the cgroup v2 root; %s is the UID (cgroupfs) or the
// UID with underscores (systemd).
var podDirs = []string{
	"kubepods/pod%s", "kubepods/burstable/pod%s", "kubepods/besteffort/pod%s",
	"kubepods.slice/kubepods-pod%s.slice",
	"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice",
	"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice",
}

// Pod finds the cgroup of the pod with uid and its containers'.
func (f *Finder) Pod(uid string) (Pod, error) {
	for i, pattern := range podDirs {
		id := uid
		if i >= 3 {
			id = strings.ReplaceAll(uid, "-", "_")
		}
		dir := filepath.Join(f.CgroupRoot, fmt.Sprintf(pattern, id))
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		p := Pod{UID: uid, Dir: dir}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return Pod{}, fmt.Errorf("read pod cgroup %s: %w", dir, err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			_, cid, _ := ParseCgroupPath(fmt.Sprintf(pattern, id) + "/" + e.Name())
			if cid == "" {
				continue
			}
			cdir := filepath.Join(dir, e.Name())
			cino, err := inode(cdir)
			if err != nil {
				continue // removed meanwhile
			}
			p.Containers = append(p.Containers, Container{ID: cid, Dir: cdir, CgroupID: cino})
		}
		return p, nil
	}
	return Pod{}, fmt.Errorf("find cgroup of pod %s under %s: %w", uid, f.CgroupRoot, ErrNotRunning)
}

// PIDs returns the processes in dir's cgroup and its descendants'.
func (f *Finder) PIDs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil // gone meanwhile
		}
		for _, field := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(field); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list processes of %s: %w", dir, err)
	}
	return pids, nil
}

func (f *Finder) proc() string {
	if f.Proc == "" {
		return "/proc"
	}
	return f.Proc
}

// NetNS returns the path of the network namespace of a live process of the
// pod that is not the node's (every container of a pod shares it) and the
// namespace's inode. When every process is in the node's own network
// namespace it returns ErrHostNetwork: a hostNetwork pod, or one whose
// sandbox is still being set up. Either way a pod target never reaches the
// node's interfaces.
func (f *Finder) NetNS(p Pod) (path string, ino uint64, err error) {
	host, err := inode(filepath.Join(f.proc(), "1", "ns", "net"))
	if err != nil {
		// PID 1's namespace may be unreadable; ours is the node's
		// (the agent runs with hostNetwork).
		if host, err = inode(filepath.Join(f.proc(), "self", "ns", "net")); err != nil {
			return "", 0, fmt.Errorf("read the node's network namespace: %w", err)
		}
	}
	pids, err := f.PIDs(p.Dir)
	if err != nil {
		return "", 0, err
	}
	inHost := false
	for _, pid := range pids {
		path := filepath.Join(f.proc(), strconv.Itoa(pid), "ns", "net")
		ino, err := inode(path)
		if err != nil {
			continue // exited
		}
		if ino == host {
			// A hostNetwork pod, or a process the runtime has not moved
			// into the pod's namespace yet (runc init): look further.
			inHost = true
			continue
		}
		return path, ino, nil
	}
	if inHost {
		return "", 0, fmt.Errorf("pod %s: %w", p.UID, ErrHostNetwork)
	}
	return "", 0, fmt.Errorf("network namespace of pod %s: %w", p.UID, ErrNotRunning)
}

// Root returns the root filesystem of container c as a live process of it
// sees it (/proc/<pid>/root), and that pid.
func (f *Finder) Root(c Container) (string, int, error) {
	pids, err := f.PIDs(c.Dir)
	if err != nil {
		return "", 0, err
	}
	for _, pid := range pids {
		root := filepath.Join(f.proc(), strconv.Itoa(pid), "root")
		if _, err := os.Stat(root); err == nil {
			return root, pid, nil
		}
	}
	return "", 0, fmt.Errorf("root filesystem of container %s: %w", c.ID, ErrNotRunning)
}

func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
