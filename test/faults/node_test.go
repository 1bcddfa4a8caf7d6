package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/cache"
	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// blobs lists the node cache's blob files.
func blobs(t *testing.T, n *localenv.Node) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(n.StateDir, "cache", "blobs", "sha256", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// intact tells whether the node's cache holds bundle digest whole, as the
// cache itself reads it back (every blob of it hashed to its name), and how
// many blob files the cache has. Blobs of bundles no program needs any more
// may stay damaged until the cache's grace (KeepUnused) lets GC remove them:
// nothing loads them unchecked.
func intact(t *testing.T, n *localenv.Node, digest string) (bool, int) {
	t.Helper()
	c, err := cache.Open(filepath.Join(n.StateDir, "cache"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup(context.Background(), digest)
	return err == nil, len(blobs(t, n))
}

// holds counts the reconciles that held bpfProgram at what runs, as the
// agent logs them.
func holds(a *agentProcess, bpfProgram string) int {
	n := 0
	for _, line := range strings.Split(a.Log(), "\n") {
		if strings.Contains(line, "holding BpfProgram at what runs") && strings.Contains(line, `"bpfProgram":"`+bpfProgram+`"`) {
			n++
		}
	}
	return n
}

// TestNodeCacheCorrupted: bytes flipped in every cached blob, or the blobs
// removed → while the registry is down too, what runs keeps running; once it
// answers, the cache is detected corrupted by digest and pulled again.
func TestNodeCacheCorrupted(t *testing.T) {
	e := requireEnv(t)
	n := e.Nodes[0]
	for i, damage := range []struct {
		name string
		do   func(t *testing.T, files []string)
	}{
		{"flip bytes", func(t *testing.T, files []string) {
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				data[len(data)/2] ^= 0xff
				if err := os.WriteFile(f, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"remove files", func(t *testing.T, files []string) {
			for _, f := range files {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(damage.name, func(t *testing.T) {
			p := filterProgram(t, e, "cache-"+string(rune('a'+i)), v1Ref, n)
			removeLater(t, e, p)
			stopInProcessAgent(t, e, n)
			agent := startAgent(t, e, n, "")
			create(t, e, p)
			running := waitEntry(t, e, n, p.Name, time.Minute, "v1 attached", attachedWith(v1Digest))
			if ok, k := intact(t, n, v1Digest); !ok {
				t.Fatalf("cache not intact before the damage (%d blobs)", k)
			}
			proxy.SetMode(Fail500)
			t.Cleanup(func() { proxy.SetMode(Pass) })
			traffic := startStream(t, e, n)
			heldBefore := holds(agent, p.Name)
			damage.do(t, blobs(t, n))
			// Two reconciles read the damaged cache with the registry down:
			// each holds the program at what runs and logs it. Wait for
			// them, not for a time.
			err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
				return holds(agent, p.Name) >= heldBefore+2, nil
			})
			if err != nil {
				t.Fatalf("no two reconciles read the damaged cache (%d holds logged): %v\nagent log:\n%s", holds(agent, p.Name)-heldBefore, err, agent.Log())
			}
			st := waitEntry(t, e, n, p.Name, 10*time.Second, "v1 still attached", attachedWith(v1Digest))
			if st.ID != running.ID || xdpProgramID(t, n) != running.ID {
				t.Errorf("program %d replaced by %d (kernel %d) while the cache was damaged", running.ID, st.ID, xdpProgramID(t, n))
			}
			during := describe(st)
			proxy.SetMode(Pass)
			deadline := time.Now().Add(30 * time.Second)
			for ok, _ := intact(t, n, v1Digest); !ok; ok, _ = intact(t, n, v1Digest) {
				if time.Now().After(deadline) {
					t.Fatalf("cache not repaired 30s after the registry came back")
				}
				time.Sleep(200 * time.Millisecond)
			}
			_, k := intact(t, n, v1Digest)
			tr := traffic.stop(t)
			st = waitEntry(t, e, n, p.Name, 10*time.Second, "v1 attached", attachedWith(v1Digest))
			leaks := checkClean(t, n, st, agent.cmd.Process.Pid)
			for _, l := range leaks {
				t.Errorf("leak: %s", l)
			}
			report(t, "cache "+damage.name, "while registry down: %s; repaired (%d blobs re-checked); program id %d → %d; %s; leaks %d",
				during, k, running.ID, st.ID, tr, len(leaks))
			if tr.BadReceived != 0 || tr.GoodReceived != tr.GoodSent {
				t.Errorf("traffic across the damage: %s", tr)
			}
			if st.ID != running.ID {
				t.Errorf("program reloaded (id %d → %d): a repaired cache must not reload what runs", running.ID, st.ID)
			}
		})
	}
}

// TestBPFFSWiped simulates a reboot's loss of pins: the agent stopped, the
// node's pin root removed (which detaches), the agent started again →
// everything is loaded, attached and reported again.
func TestBPFFSWiped(t *testing.T) {
	e := requireEnv(t)
	n := e.Nodes[0]
	p := filterProgram(t, e, "bpffs-wiped", v1Ref, n)
	removeLater(t, e, p)
	stopInProcessAgent(t, e, n)
	a := startAgent(t, e, n, "")
	create(t, e, p)
	before := waitEntry(t, e, n, p.Name, time.Minute, "attached", attachedWith(v1Digest))
	a.kill()
	if err := os.RemoveAll(n.BPFFSRoot); err != nil {
		t.Fatal(err)
	}
	// The kernel frees a link whose last reference is gone in deferred
	// work, which a loaded machine can delay past the unlink.
	for deadline := time.Now().Add(5 * time.Second); xdpProgramID(t, n) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("eth0 still runs program %d 5s after its pins were removed", xdpProgramID(t, n))
		}
	}
	start := time.Now()
	a = startAgent(t, e, n, "")
	st := waitEntry(t, e, n, p.Name, time.Minute, "attached again", func(s *v1.ProgramState) bool {
		return attachedWith(v1Digest)(s) && s.ID != before.ID
	})
	took := time.Since(start)
	leaks := checkClean(t, n, st, a.cmd.Process.Pid)
	for _, l := range leaks {
		t.Errorf("leak: %s", l)
	}
	tr, err := e.SendTraffic(t.Context(), n, 50)
	if err != nil {
		t.Fatal(err)
	}
	report(t, "bpffs subtree wiped", "program %d → %d reloaded and reported in %s; then %s; leaks %d", before.ID, st.ID, took.Round(time.Millisecond), tr, len(leaks))
	if tr.BadReceived != 0 || tr.GoodReceived != tr.GoodSent {
		t.Errorf("after the reload: %s", tr)
	}
}

// TestInterfaceFlapping: eth0 set down and up, and deleted and created
// again, 50 times in 10 s → the filter is attached at the end, through one
// link, with no link or pin left over.
func TestInterfaceFlapping(t *testing.T) {
	e := requireEnv(t)
	n := e.Nodes[0]
	p := filterProgram(t, e, "flapping", v1Ref, n)
	removeLater(t, e, p)
	stopInProcessAgent(t, e, n)
	a := startAgent(t, e, n, "")
	create(t, e, p)
	before := waitEntry(t, e, n, p.Name, time.Minute, "attached", attachedWith(v1Digest))
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	recreates := 0
	start := time.Now()
	for i := 0; i < 50; i++ {
		if i%5 == 4 {
			recreates++
			ip("-n", n.NetNS, "link", "del", n.Interface) // takes the host peer with it
			ip("link", "add", n.HostInterface, "type", "veth", "peer", "name", n.Interface, "netns", n.NetNS)
			ip("addr", "add", n.HostAddr.String()+"/30", "dev", n.HostInterface)
			ip("link", "set", n.HostInterface, "up")
			ip("-n", n.NetNS, "addr", "add", n.Addr.String()+"/30", "dev", n.Interface)
			ip("-n", n.NetNS, "link", "set", n.Interface, "up")
		} else {
			ip("-n", n.NetNS, "link", "set", n.Interface, "down")
			ip("-n", n.NetNS, "link", "set", n.Interface, "up")
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 200 * time.Millisecond)))
	}
	flapped := time.Since(start)
	settle := time.Now()
	var st *v1.ProgramState
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = waitEntry(t, e, n, p.Name, 30*time.Second, "attached", attachedWith(v1Digest))
		if id := xdpProgramID(t, n); id == st.ID && len(linksOf(t, st.ID)) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after flapping: status %s, kernel runs %d on eth0", describe(st), xdpProgramID(t, n))
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(settle)
	leaks := checkClean(t, n, st, a.cmd.Process.Pid)
	for _, l := range leaks {
		t.Errorf("leak: %s", l)
	}
	tr, err := e.SendTraffic(t.Context(), n, 50)
	if err != nil {
		t.Fatal(err)
	}
	report(t, "interface flapping", "%d down/up + %d delete/create in %s; attached %s after (program %d → %d, link %d → %d); %s; leaks %d",
		50-recreates, recreates, flapped.Round(time.Millisecond), took.Round(time.Millisecond), before.ID, st.ID, before.LinkID, st.LinkID, tr, len(leaks))
	if tr.BadReceived != 0 || tr.GoodReceived != tr.GoodSent {
		t.Errorf("after flapping: %s", tr)
	}
}

// TestSecondAgentRefused: a second agent for a node whose agent runs exits
// at once with code 1 and says the state directory is locked; the first
// keeps working.
func TestSecondAgentRefused(t *testing.T) {
	e := requireEnv(t)
	n := e.Nodes[len(e.Nodes)-1] // its in-process agent runs
	p := filterProgram(t, e, "second-agent", v1Ref, n)
	removeLater(t, e, p)
	second := startAgent(t, e, n, "")
	if err := second.wait(30 * time.Second); err != nil {
		t.Fatalf("second agent did not exit: %v\n%s", err, second.Log())
	}
	msg := strings.TrimSpace(second.Log())
	if second.exitCode() != 1 || !strings.Contains(msg, controller.ErrLocked.Error()) || !strings.Contains(msg, controller.LockFile) {
		t.Errorf("second agent: exit code %d, output %q; want 1 and %q naming %s", second.exitCode(), msg, controller.ErrLocked, controller.LockFile)
	}
	create(t, e, p)
	st := waitEntry(t, e, n, p.Name, time.Minute, "attached by the first agent", attachedWith(v1Digest))
	tr, err := e.SendTraffic(t.Context(), n, 20)
	if err != nil {
		t.Fatal(err)
	}
	last := msg
	if i := strings.LastIndex(msg, "\n"); i >= 0 {
		last = msg[i+1:]
	}
	report(t, "second agent for a node", "exit %d: %q; first agent attached id %d; %s", second.exitCode(), last, st.ID, tr)
	if tr.BadReceived != 0 {
		t.Errorf("first agent's filter: %s", tr)
	}
}

// TestTracefsUnmounted unmounts tracefs under a running agent (in a mount
// namespace of the agent's own, so that the rest of the machine keeps it):
// the tracepoint program attached keeps running, and a new one attaches at
// the next resync because the agent mounts tracefs again.
func TestTracefsUnmounted(t *testing.T) {
	e := requireEnv(t)
	n := e.Nodes[0]
	unshare := privileged.RequireCommand(t, "unshare")
	nsenter := privileged.RequireCommand(t, "nsenter")
	traced := func(name string) *v1.BpfProgram {
		p, err := e.ExecTraceProgram(name)
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": n.Name}}
		return p
	}
	first, second := traced("tracefs-first"), traced("tracefs-second")
	removeLater(t, e, first)
	removeLater(t, e, second)
	stopInProcessAgent(t, e, n)
	a := startAgentWrapped(t, e, n, []string{unshare, "--mount", "--propagation", "private"}, "")
	create(t, e, first)
	running := waitEntry(t, e, n, first.Name, time.Minute, "exec tracer attached", func(s *v1.ProgramState) bool {
		return s.State == v1.PhaseAttached
	})

	inAgentNS := func(args ...string) error {
		cmd := exec.Command(nsenter, append([]string{"-t", strconv.Itoa(a.cmd.Process.Pid), "-m", "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %w: %s", args, err, out)
		}
		return nil
	}
	if err := inAgentNS("umount", "/sys/kernel/tracing"); err != nil {
		t.Fatal(err)
	}
	if inAgentNS("mountpoint", "-q", "/sys/kernel/tracing") == nil {
		t.Fatal("tracefs still mounted in the agent's namespace after umount")
	}
	if err := exec.Command("mountpoint", "-q", "/sys/kernel/tracing").Run(); err != nil {
		t.Fatalf("tracefs gone from the host too: the fault leaked out of the agent's namespace: %v", err)
	}

	start := time.Now()
	create(t, e, second)
	waitEntry(t, e, n, second.Name, time.Minute, "a new tracepoint attached with tracefs unmounted", func(s *v1.ProgramState) bool {
		return s.State == v1.PhaseAttached
	})
	took := time.Since(start)
	if err := inAgentNS("mountpoint", "-q", "/sys/kernel/tracing"); err != nil {
		t.Errorf("the agent did not mount tracefs again: %v", err)
	}
	st := waitEntry(t, e, n, first.Name, 10*time.Second, "the first tracer still attached", func(s *v1.ProgramState) bool {
		return s.State == v1.PhaseAttached
	})
	if st.ID != running.ID {
		t.Errorf("the first tracer was reloaded (%d → %d) while tracefs was gone", running.ID, st.ID)
	}
	report(t, "tracefs unmounted under the agent", "tracer %d kept attached; a new tracepoint attached %s later (tracefs mounted again)", st.ID, took.Round(100*time.Millisecond))
}
