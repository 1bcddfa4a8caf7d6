package realnode

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	corev1 "k8s.io/api/core/v1"

	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/test/support/netns"
)

// containerPID is the host pid of a container's main process.
func (e *env) containerPID(t testing.TB, pod *corev1.Pod, container string) int {
	t.Helper()
	var id string
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == container {
			_, id, _ = strings.Cut(s.ContainerID, "://")
		}
	}
	if id == "" {
		t.Fatalf("pod %s has no container %s running", pod.Name, container)
	}
	out, err := e.c.Ctr(context.Background(), "task", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == id {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("containerd runs no task %s:\n%s", id, out)
	return 0
}

// containerStatus is /proc/PID/status of a container's main process.
func (e *env) containerStatus(t testing.TB, pod *corev1.Pod, container string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.containerPID(t, pod, container)))
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st
}

// capabilityNames are the kernel's capability numbers, as in capability.h.
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
	"CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capNames decodes a /proc status capability mask, sorted.
func capNames(t testing.TB, hex string) []string {
	t.Helper()
	mask, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		t.Fatalf("parse capability mask %q: %v", hex, err)
	}
	var out []string
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if i < len(capabilityNames) {
			out = append(out, capabilityNames[i])
		} else {
			out = append(out, fmt.Sprintf("CAP_%d", i))
		}
	}
	sort.Strings(out)
	return out
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// podToken is the service-account token the kubelet mounted into pod's
// first container, read through the container's root.
func (e *env) podToken(t testing.TB, pod *corev1.Pod) string {
	t.Helper()
	pid := e.containerPID(t, pod, pod.Spec.Containers[0].Name)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/var/run/secrets/kubernetes.io/serviceaccount/token", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type claims struct {
	Kubernetes struct {
		Node struct{ Name string } `json:"node"`
		Pod  struct{ Name string } `json:"pod"`
	} `json:"kubernetes.io"`
}

func tokenClaims(t testing.TB, token string) claims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT (%d parts)", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// kernelprogBundle is a bundle of test/support/kernelprog's object holding one
// program per hook kind.
func (e *env) kernelprogBundle(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	obj, err := os.ReadFile(filepath.Join(repoDir, "test", "support", "kernelprog", "progs_bpfel.o"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "progs_bpfel.o"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := `name: realnode-hooks
version: 0.1.0
description: One program per hook kind, each counting its runs in counters[0].
objects:
  - file: progs_bpfel.o
programs:
  - {name: tc_count, attach: tc}
  - {name: tp_getppid, attach: tracepoint, target: syscalls/sys_enter_getppid}
  - {name: uprobe_count, attach: uprobe}
  - {name: cgroup_egress, attach: cgroup}
minKernel: "6.1"
`
	if err := os.WriteFile(filepath.Join(dir, "bundle.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// counter reads counters[0] of the BpfProgram name, pinned by the agent.
func (e *env) counter(t testing.TB, name string) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: agentBPFFS}.Map(e.uid(t, name), "counters"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var v uint64
	if err := m.Lookup(uint32(0), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// uprobeTarget builds a program with a function main.target into a host
// directory the agent's image does not have: the agent must find it
// through the node's root.
func (e *env) uprobeTarget(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(e.tmp, "uprobe-target")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "package main\n\n//go:noinline\nfunc target() int { return 42 }\n\nfunc main() { println(target()) }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module uprobetarget\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "uprobe-target")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build uprobe target: %v: %s", err, out)
	}
	return bin
}

// workloadPodCgroup runs a busybox pod that sends a request to the node
// every 200 ms and returns its pod-level cgroup in the cgroup v2
// hierarchy, relative to the hierarchy's root (the agent resolves it
// against its own view of /sys/fs/cgroup).
func (e *env) workloadPodCgroup(t testing.TB) string {
	t.Helper()
	host, port, _ := strings.Cut(e.c.RegistryNodeHost, ":")
	pod := e.runPod(t, "realnode-talker", "talker", nil, "/bin/sh", "-c",
		fmt.Sprintf("while true; do echo x | nc -w 1 %s %s >/dev/null; sleep 0.2; done", host, port))
	pid := e.containerPID(t, pod, "talker")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok && p != "/" {
			// The container's cgroup; its parent is the pod's.
			return strings.TrimPrefix(filepath.Dir(p), "/")
		}
	}
	t.Fatalf("the pod's process is in no cgroup v2 group: %s", b)
	return ""
}

// countedVeth is a veth whose node end the tcx program counts, with a peer
// in a namespace of the test's that pings it.
type countedVeth struct {
	*netns.Veth
	addr string
}

func (e *env) countedVeth(t testing.TB) countedVeth {
	t.Helper()
	src := netns.New(t)
	v := netns.NewVeth(t, nil, "198.19.99.1/30", src, "198.19.99.2/30")
	return countedVeth{Veth: v, addr: "198.19.99.1"}
}

func (v countedVeth) ping(t *testing.T) {
	t.Helper()
	v.NSB.Exec(t, "busybox", "ping", "-c", "3", "-i", "0.2", "-W", "1", v.addr)
}
