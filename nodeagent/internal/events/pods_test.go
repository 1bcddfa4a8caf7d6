package events

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func TestParseCgroupPath(t *testing.T) {
	const uid = "e2b632ce-7e59-40d1-90df-4e34eb53d438"
	const cid = "f4b084598db8e78d11d3a9c0063738a77c9035475bd8253a64a589b22dc67184"
	tests := []struct {
		path string
		want Container
		ok   bool
	}{
		{"/kubepods/besteffort/pod" + uid + "/" + cid, Container{uid, cid}, true},
		{"/kubepods/pod" + uid, Container{PodUID: uid}, true}, // guaranteed QoS, pod level
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + "e2b632ce_7e59_40d1_90df_4e34eb53d438" + ".slice/cri-containerd-" + cid + ".scope", Container{uid, cid}, true},
		{"/system.slice/containerd.service", Container{}, false},
		{"/kubepods/besteffort", Container{}, false},
		{"/user.slice/" + cid, Container{}, false}, // an id outside a pod is no container of one
	}
	for _, tt := range tests {
		got, ok := parseCgroupPath(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseCgroupPath(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBucket(t *testing.T) {
	b := newBucket(3)
	now := time.Unix(1000, 0)
	got := 0
	for range 10 {
		if b.take(now) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("a burst took %d tokens, want 3 (one second's)", got)
	}
	if !b.take(now.Add(400 * time.Millisecond)) {
		t.Error("no token 400 ms later at 3/s")
	}
	if b.take(now.Add(410 * time.Millisecond)) {
		t.Error("a second token 10 ms after the first")
	}
}

// TestParseProcCgroup: /proc/<pid>/cgroup of a hybrid (v1) host names the
// pod and container in its controllers' lines, whatever the v2 line says.
func TestParseProcCgroup(t *testing.T) {
	const uid = "e2b632ce-7e59-40d1-90df-4e34eb53d438"
	const cid = "f4b084598db8e78d11d3a9c0063738a77c9035475bd8253a64a589b22dc67184"
	tests := []struct {
		name, content string
		want          Container
		ok            bool
	}{
		{"v1 cgroupfs", "12:pids:/kubepods/besteffort/pod" + uid + "/" + cid + "\n4:memory:/kubepods/besteffort/pod" + uid + "/" + cid + "\n1:name=systemd:/user.slice\n0::/\n", Container{uid, cid}, true},
		{"v1 systemd", "5:cpu,cpuacct:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + cid + ".scope\n0::/\n", Container{uid, cid}, true},
		{"pod level only", "3:memory:/kubepods/pod" + uid + "\n", Container{PodUID: uid}, true},
		{"container beats pod", "3:memory:/kubepods/pod" + uid + "\n2:pids:/kubepods/pod" + uid + "/" + cid + "\n", Container{uid, cid}, true},
		{"v2 only", "0::/kubepods/burstable/pod" + uid + "/" + cid + "\n", Container{uid, cid}, true},
		{"host", "9:name=systemd:/\n8:pids:/user.slice\n0::/\n", Container{}, false},
		{"garbage", "no colons here\n\n", Container{}, false},
	}
	for _, tt := range tests {
		got, ok := parseProcCgroup(tt.content)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestContainerOfPID: a real process moved into a v1 cgroup laid out like
// a kubelet's (pod<uid>/<container id>) is found by its pid; the test's
// own process is the host's, and a pid that does not exist is nobody's.
func TestContainerOfPID(t *testing.T) {
	privileged.RequireRoot(t)
	const uid = "0f3c8f53-3c3d-4c53-9d4e-6b9f2c1f7a11"
	const cid = "8d1c5c6e0c1b4a3f9e2d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f"
	hier := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(hier, "cgroup.procs")); err != nil {
		privileged.SkipOrFail(t, "no cgroup v1 pids hierarchy at %s: %v", hier, err)
	}
	top := filepath.Join(hier, fmt.Sprintf("bpfleet-test-%d", os.Getpid()))
	dir := filepath.Join(top, "pod"+uid, cid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.Remove(dir)
		_ = os.Remove(filepath.Dir(dir))
		_ = os.Remove(top)
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, ok := ContainerOfPID("/proc", uint32(cmd.Process.Pid)); !ok || got != (Container{uid, cid}) {
		t.Errorf("process in %s: %+v, %v; want %s/%s", dir, got, ok, uid, cid)
	}
	if got, ok := ContainerOfPID("/proc", uint32(os.Getpid())); ok {
		t.Errorf("the test's own process is tagged %+v, want the host", got)
	}
	if _, ok := ContainerOfPID("/proc", 1<<22+1); ok {
		t.Error("a pid that does not exist is tagged with a pod")
	}
}
