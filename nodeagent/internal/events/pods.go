package events

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bpfleet/bpfleet/nodeagent/internal/pods"
)

// Container is where a cgroup belongs: a pod's container, or the host when
// PodUID is empty.
type Container struct {
	PodUID      string
	ContainerID string
}

// CgroupIndex maps cgroup v2 ids (the inode numbers bpf_get_current_cgroup_id
// returns) to pods' containers by walking the kubelet's cgroups under Root.
// A miss rescans, at most once per MinRescan, so a new container is found
// on its first event and a host process costs a map lookup.
type CgroupIndex struct {
	// Root is the cgroup v2 mount.
	Root string
	// MinRescan bounds how often a miss walks the tree; zero means 1 s.
	MinRescan time.Duration

	mu      sync.Mutex
	byID    map[uint64]Container
	scanned time.Time
}

// NoContainers tells whether the last scan found no container cgroups in
// the cgroup v2 hierarchy (a hybrid host whose runtime uses cgroup v1):
// then only a record's pid can name its pod (ContainerOfPID).
func (x *CgroupIndex) NoContainers() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return !x.scanned.IsZero() && len(x.byID) == 0
}

// ContainerOfPID finds the pod container of process pid from
// procRoot/<pid>/cgroup (any hierarchy, v1 or v2); false for a host
// process or one that has exited.
func ContainerOfPID(procRoot string, pid uint32) (Container, bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if err != nil {
		return Container{}, false
	}
	return parseProcCgroup(string(b))
}

// parseProcCgroup reads /proc/<pid>/cgroup ("id:controllers:path" lines):
// the first path naming a pod's container, else the first naming a pod.
func parseProcCgroup(content string) (Container, bool) {
	var pod Container
	for _, line := range strings.Split(content, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		c, ok := parseCgroupPath(parts[2])
		switch {
		case ok && c.ContainerID != "":
			return c, true
		case ok && pod.PodUID == "":
			pod = c
		}
	}
	return pod, pod.PodUID != ""
}

// Lookup returns the container of cgroup id; false for a cgroup outside
// every pod (the host's).
func (x *CgroupIndex) Lookup(id uint64) (Container, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c, ok := x.byID[id]; ok {
		return c, true
	}
	every := x.MinRescan
	if every == 0 {
		every = time.Second
	}
	if time.Since(x.scanned) < every {
		return Container{}, false
	}
	x.byID, x.scanned = scanCgroups(x.Root), time.Now()
	c, ok := x.byID[id]
	return c, ok
}

// scanCgroups walks every kubepods tree under root.
func scanCgroups(root string) map[uint64]Container {
	out := map[uint64]Container{}
	tops, _ := filepath.Glob(filepath.Join(root, "kubepods*"))
	for _, top := range tops {
		_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			c, ok := parseCgroupPath(strings.TrimPrefix(path, root))
			if !ok {
				return nil
			}
			if st, err := os.Stat(path); err == nil {
				if sys, ok := st.Sys().(*syscall.Stat_t); ok {
					out[sys.Ino] = c
				}
			}
			return nil
		})
	}
	return out
}

// parseCgroupPath finds the pod UID and container id in a kubelet cgroup
// path (either cgroup driver); ok is false outside any pod.
func parseCgroupPath(path string) (Container, bool) {
	uid, id, ok := pods.ParseCgroupPath(path)
	return Container{PodUID: uid, ContainerID: id}, ok
}
