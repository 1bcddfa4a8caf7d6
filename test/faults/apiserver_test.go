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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// controlPlaneOutage runs outage (which returns once the control plane is
// back) while a filter runs on one node under traffic: the filter must keep
// running with nothing lost, and afterwards another node must take new work
// and nothing may have been reloaded. It reports the fault as what.
func controlPlaneOutage(t *testing.T, name, what string, outage func(during func())) {
	e := requireEnv(t)
	n, other := e.Nodes[0], e.Nodes[1]
	p := filterProgram(t, e, name, v1Ref, n)
	removeLater(t, e, p)
	create(t, e, p)
	running := waitEntry(t, e, n, p.Name, time.Minute, "attached", attachedWith(v1Digest))
	traffic := startStream(t, e, n)
	var ran []uint32
	outage(func() { ran = append(ran, xdpProgramID(t, n)) })
	ran = append(ran, xdpProgramID(t, n))
	tr := traffic.stop(t)
	for _, id := range ran {
		if id != running.ID {
			t.Errorf("through the outage eth0 ran %v, want %d throughout", ran, running.ID)
			break
		}
	}
	if tr.BadReceived != 0 || tr.GoodReceived != tr.GoodSent {
		t.Errorf("traffic through the outage: %s", tr)
	}
	start := time.Now()
	q := filterProgram(t, e, name+"-back", v1Ref, other)
	removeLater(t, e, q)
	deadline := time.Now().Add(time.Minute)
	for err := e.Client.Create(t.Context(), q); err != nil; err = e.Client.Create(t.Context(), q) {
		if apierrors.IsAlreadyExists(err) {
			break // an earlier try was stored after all
		}
		if time.Now().After(deadline) {
			t.Fatalf("the apiserver stores nothing a minute after the outage: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	waitEntry(t, e, other, q.Name, time.Minute, "new work attached after the outage", attachedWith(v1Digest))
	took := time.Since(start)
	st := waitEntry(t, e, n, p.Name, 10*time.Second, "still attached", attachedWith(v1Digest))
	if st.ID != running.ID {
		t.Errorf("program reloaded across the outage: %d → %d", running.ID, st.ID)
	}
	report(t, what, "program %d kept running; %s; a new program attached %s after it came back", st.ID, tr, took.Round(100*time.Millisecond))
}

// TestAPIServerFrozen stops the apiserver (SIGSTOP: every request hangs, as
// when it is down behind a load balancer) for 60 s: what runs keeps running
// and filtering, and once it answers again (SIGCONT) the agents pick up new
// work. envtest cannot restart its apiserver in place (Stop removes its
// certificates and directories), so a freeze stands in for an outage.
func TestAPIServerFrozen(t *testing.T) {
	const outage = 60 * time.Second
	controlPlaneOutage(t, "apiserver-frozen", fmt.Sprintf("apiserver stopped %s (SIGSTOP)", outage), func(during func()) {
		pid := apiserverPID(t)
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
		time.Sleep(outage / 2)
		during()
		time.Sleep(outage / 2)
		during()
		thaw()
	})
}

// TestEtcdRestarted stops etcd for 10 s and starts it again with its data,
// as a restarted etcd member: the apiserver answers errors meanwhile, what
// runs keeps running and filtering, and afterwards the agents take new work
// and nothing was reloaded.
func TestEtcdRestarted(t *testing.T) {
	controlPlaneOutage(t, "etcd-restarted", "etcd stopped 10s and restarted", func(func()) {
		if err := requireEnv(t).RestartEtcd(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}
