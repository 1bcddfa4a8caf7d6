package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestLocalInterruptedLeavesNothing runs `bpfleet-local --keep` as a user
// would, waits until it runs, presses Ctrl-C (SIGINT) and checks that it
// exits 0 and leaves no network namespace, host interface, pin, etcd or
// kube-apiserver behind.
func TestLocalInterruptedLeavesNothing(t *testing.T) {
	privileged.RequireRoot(t)
	goBin := privileged.RequireCommand(t, "go")
	privileged.RequireCommand(t, "ip")
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "k8s", "kube-apiserver")); err != nil {
		privileged.SkipOrFail(t, "no control plane in bin/k8s (make tools): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "bpfleet-local")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	prefix := "lt" + hex.EncodeToString(suffix)
	stateDir := t.TempDir()
	apiPort, regPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--keep", "--repo", root, "--state-dir", stateDir, "--nodes", "2",
		"--api-port", strconv.Itoa(apiPort), "--registry-port", strconv.Itoa(regPort), "--prefix", prefix)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	deadline := time.After(5 * time.Minute)
	for !strings.Contains(out.String(), "running until Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("bpfleet-local exited before it ran (%v):\n%s", err, out)
		case <-deadline:
			t.Fatalf("bpfleet-local not running after 5 minutes:\n%s", out)
		case <-time.After(200 * time.Millisecond):
		}
	}
	markers := []string{stateDir, fmt.Sprintf("--secure-port=%d", apiPort)}
	if l := leftovers(t, prefix, markers...); len(l.NetNS) == 0 || len(l.Pins) == 0 || len(l.Processes) < 2 {
		t.Fatalf("while running, found only %+v of %s: the checks below would prove nothing", l, prefix)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bpfleet-local after Ctrl-C: %v\n%s", err, out)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("bpfleet-local still tearing down 2 minutes after Ctrl-C:\n%s", out)
	}
	if !strings.Contains(out.String(), "torn down: no BpfProgram, pin, network namespace or process left") {
		t.Errorf("no teardown confirmation:\n%s", out)
	}
	if l := leftovers(t, prefix, markers...); l.any() {
		t.Errorf("left behind after Ctrl-C: %+v", l)
	}
}

// left is what an environment named prefix leaves on the machine.
type left struct {
	NetNS, Links, Pins, Processes []string
}

func (l left) any() bool {
	return len(l.NetNS)+len(l.Links)+len(l.Pins)+len(l.Processes) > 0
}

// leftovers finds what prefix names, and processes (but bpfleet-local itself)
// whose command line holds one of markers.
func leftovers(t *testing.T, prefix string, markers ...string) left {
	t.Helper()
	var l left
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, prefix) {
				l.NetNS = append(l.NetNS, strings.Fields(line)[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], prefix) {
				l.Links = append(l.Links, strings.TrimSuffix(f[1], ":"))
			}
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/bpf", prefix+"-local")); err == nil {
		l.Pins = append(l.Pins, filepath.Join("/sys/fs/bpf", prefix+"-local"))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || strings.Contains(string(b), "local\x00--keep") {
			continue
		}
		for _, m := range markers {
			if strings.Contains(string(b), m) {
				l.Processes = append(l.Processes, strings.ReplaceAll(string(b), "\x00", " "))
				break
			}
		}
	}
	return l
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
