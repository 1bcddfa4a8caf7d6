package pods_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/nodeagent/internal/pods"
	"github.com/bpfleet/bpfleet/test/support/cgroupv2"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func TestParseCgroupPath(t *testing.T) {
	const uid = "0b5f7c52-6a8e-4a4b-9d4c-2f1d2b3c4d5e"
	const cid = "4f3c2b1a0f3c2b1a0f3c2b1a0f3c2b1a0f3c2b1a0f3c2b1a0f3c2b1a0f3c2b1a"
	tests := []struct {
		path          string
		wantPod, want string
		ok            bool
	}{
		{"/kubepods/besteffort/pod" + uid + "/" + cid, uid, cid, true},
		{"/kubepods/pod" + uid, uid, "", true},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b5f7c52_6a8e_4a4b_9d4c_2f1d2b3c4d5e.slice/cri-containerd-" + cid + ".scope", uid, cid, true},
		{"/system.slice/containerd.service", "", "", false},
		{"/" + cid, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			pod, c, ok := pods.ParseCgroupPath(tt.path)
			if pod != tt.wantPod || c != tt.want || ok != tt.ok {
				t.Fatalf("ParseCgroupPath = %q %q %v, want %q %q %v", pod, c, ok, tt.wantPod, tt.want, tt.ok)
			}
		})
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// simulatedPod makes a kubelet-style cgroup for a pod with one container
// under root, and starts a process in it: in a network namespace of its
// own, or the node's when hostNetwork.
func simulatedPod(t *testing.T, root string, hostNetwork bool) (uid, containerID string, pid int) {
	t.Helper()
	u := randomHex(t, 16)
	uid = fmt.Sprintf("%s-%s-%s-%s-%s", u[:8], u[8:12], u[12:16], u[16:20], u[20:])
	containerID = randomHex(t, 32)
	dir := filepath.Join(root, "kubepods", "besteffort", "pod"+uid, containerID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"sleep", "60"}
	if !hostNetwork {
		args = append([]string{"unshare", "--net"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for d := dir; d != root; d = filepath.Dir(d) {
			_ = os.Remove(d)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	// unshare execs sleep in the same process once the namespace exists.
	deadline := time.Now().Add(5 * time.Second)
	for !hostNetwork && time.Now().Before(deadline) {
		self, _ := os.Readlink("/proc/self/ns/net")
		theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if theirs != "" && theirs != self {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return uid, containerID, cmd.Process.Pid
}

// TestFinderOnSimulatedPods finds real processes' cgroups, network
// namespaces and root filesystems in a kubelet-style cgroup tree the test
// makes under the real cgroup v2 mount.
func TestFinderOnSimulatedPods(t *testing.T) {
	privileged.RequireRoot(t)
	privileged.RequireCommand(t, "unshare")
	root := filepath.Join(cgroupv2.Root(t), "bpfleet-pods-"+randomHex(t, 4))
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(root) })
	f := &pods.Finder{CgroupRoot: root}

	// Started first, so its pid is listed before the pod's.
	straggler := exec.Command("sleep", "60")
	if err := straggler.Start(); err != nil {
		t.Fatal(err)
	}
	uid, cid, pid := simulatedPod(t, root, false)
	t.Cleanup(func() { _ = straggler.Process.Kill(); _ = straggler.Wait() })
	p, err := f.Pod(uid)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.Container(cid)
	if !ok || len(p.Containers) != 1 {
		t.Fatalf("containers %+v, want %s", p.Containers, cid)
	}
	var st os.FileInfo
	if st, err = os.Stat(c.Dir); err != nil || c.CgroupID == 0 || st == nil {
		t.Fatalf("container cgroup %s id %d: %v", c.Dir, c.CgroupID, err)
	}
	pids, err := f.PIDs(p.Dir)
	if err != nil || len(pids) != 1 || pids[0] != pid {
		t.Fatalf("PIDs = %v, %v; want [%d]", pids, err, pid)
	}
	// A process still in the node's namespace in the same cgroup (as runc
	// init is for a moment) must not hide the pod's namespace.
	if err := os.WriteFile(filepath.Join(c.Dir, "cgroup.procs"), []byte(strconv.Itoa(straggler.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	path, ino, err := f.NetNS(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("/proc/%d/ns/net", pid); path != want || ino == 0 {
		t.Fatalf("NetNS = %s (%d), want %s", path, ino, want)
	}
	rootfs, rpid, err := f.Root(c)
	if err != nil || rootfs != fmt.Sprintf("/proc/%d/root", pid) || rpid != pid {
		t.Fatalf("Root = %s %d %v", rootfs, rpid, err)
	}

	hostUID, _, _ := simulatedPod(t, root, true)
	hp, err := f.Pod(hostUID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.NetNS(hp); !errors.Is(err, pods.ErrHostNetwork) {
		t.Fatalf("NetNS of a hostNetwork pod: %v, want ErrHostNetwork", err)
	}
	if _, err := f.Pod("00000000-0000-0000-0000-000000000000"); !errors.Is(err, pods.ErrNotRunning) {
		t.Fatalf("Pod of a pod not on the node: %v, want ErrNotRunning", err)
	}
}
