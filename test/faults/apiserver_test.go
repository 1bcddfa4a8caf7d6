package faults

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// apiserverPID finds the environment's kube-apiserver by its port.
func apiserverPID(t *testing.T) int {
	t.Helper()
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	want := "--secure-port=" + u.Port()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "kube-apiserver" {
			continue
		}
		for _, a := range args {
			if a == want {
				var pid int
				if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid); err == nil {
					return pid
				}
			}
		}
	}
	t.Fatalf("no kube-apiserver with %s", want)
	return 0
}

// TestAPIServerFrozen stops the apiserver (SIGSTOP: every request hangs, as
// when it is down behind a load balancer) for 8 s: what runs keeps running
// and filtering, and once it answers again (SIGCONT) the agents pick up new
// work. envtest cannot restart its apiserver in place (Stop removes its
// certificates and directories), so a freeze stands in for an outage.
func TestAPIServerFrozen(t *testing.T) {
	e := requireEnv(t)
	n, other := e.Nodes[0], e.Nodes[1]
	p := filterProgram(t, e, "apiserver-frozen", v1Ref, n)
	removeLater(t, e, p)
	create(t, e, p)
	running := waitEntry(t, e, n, p.Name, time.Minute, "attached", attachedWith(v1Digest))
	pid := apiserverPID(t)
	traffic := startStream(t, e, n)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	time.Sleep(8 * time.Second)
	during := xdpProgramID(t, n)
	thaw()
	tr := traffic.stop(t)
	if during != running.ID {
		t.Errorf("while the apiserver was stopped eth0 ran %d, want %d", during, running.ID)
	}
	if tr.BadReceived != 0 || tr.GoodReceived != tr.GoodSent {
		t.Errorf("traffic while the apiserver was stopped: %s", tr)
	}
	start := time.Now()
	q := filterProgram(t, e, "apiserver-back", v1Ref, other)
	removeLater(t, e, q)
	create(t, e, q)
	waitEntry(t, e, other, q.Name, time.Minute, "new work attached after the apiserver came back", attachedWith(v1Digest))
	took := time.Since(start)
	st := waitEntry(t, e, n, p.Name, 10*time.Second, "still attached", attachedWith(v1Digest))
	if st.ID != running.ID {
		t.Errorf("program reloaded across the outage: %d → %d", running.ID, st.ID)
	}
	report(t, "apiserver stopped 8s (SIGSTOP)", "program %d kept running; %s; a new program attached %s after it came back", st.ID, tr, took.Round(100*time.Millisecond))
}
