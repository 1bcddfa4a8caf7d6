package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/test/support/netns"
)

// filterProgram is the packet-of-death filter from ref on node n only.
func filterProgram(t *testing.T, e *localenv.Env, name, ref string, n *localenv.Node) *v1.BpfProgram {
	t.Helper()
	p, err := e.FilterProgram(name)
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Bundle.Image = ref
	p.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": n.Name}}
	return p
}

// create creates p. Call removeLater first, before stopping an agent, so
// that the deletion runs after the agents are back.
func create(t *testing.T, e *localenv.Env, p *v1.BpfProgram) {
	t.Helper()
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("create %s: %v", p.Name, err)
	}
}

// update changes p with mutate and writes it, reading it again on a
// conflict (the operator writes its status meanwhile).
func update(t *testing.T, e *localenv.Env, p *v1.BpfProgram, mutate func(*v1.BpfProgram)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		mutate(p)
		return e.Client.Update(ctx, p)
	})
	if err != nil {
		t.Fatalf("update %s: %v", p.Name, err)
	}
}

// removeLater deletes p when the test ends, after the cleanups registered
// later (agents restarted), and waits until no node reports it.
func removeLater(t *testing.T, e *localenv.Env, p *v1.BpfProgram) {
	t.Helper()
	t.Cleanup(func() { remove(t, e, p) })
}

// remove deletes p and waits until no node reports it.
func remove(t *testing.T, e *localenv.Env, p *v1.BpfProgram) {
	t.Helper()
	ctx := context.Background()
	if err := e.Client.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
		t.Errorf("delete %s: %v", p.Name, err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, n := range e.Nodes {
			var s v1.BpfNodeState
			if err := e.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &s); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			if entry(s, p.Name) != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("wait until no node reports %s: %v", p.Name, err)
	}
}

// entry is the node's (single) program entry of a BpfProgram.
func entry(s v1.BpfNodeState, bpfProgram string) *v1.ProgramState {
	for i := range s.Status.Programs {
		if s.Status.Programs[i].BpfProgram == bpfProgram {
			return &s.Status.Programs[i]
		}
	}
	return nil
}

// waitEntry polls n's BpfNodeState until cond holds for p's entry.
func waitEntry(t *testing.T, e *localenv.Env, n *localenv.Node, p string, timeout time.Duration, what string, cond func(*v1.ProgramState) bool) *v1.ProgramState {
	t.Helper()
	var last *v1.ProgramState
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var s v1.BpfNodeState
		if err := e.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &s); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = entry(s, p)
		return last != nil && cond(last), nil
	})
	if err != nil {
		t.Fatalf("node %s, %s: wait until %s (last entry %s): %v", n.Name, p, what, describe(last), err)
	}
	return last
}

func describe(s *v1.ProgramState) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%s %s digest %.19s id %d link %d: %s", s.State, s.Reason, s.Digest, s.ID, s.LinkID, s.Message)
}

// attachedWith tells whether an entry runs digest.
func attachedWith(digest string) func(*v1.ProgramState) bool {
	return func(s *v1.ProgramState) bool {
		return s.State == v1.PhaseAttached && s.Digest == digest && s.ID != 0
	}
}

// xdpProgramID is the id of the XDP program on the node's eth0 (0 when
// none), read with iproute2 inside the node's namespace.
func xdpProgramID(t *testing.T, n *localenv.Node) uint32 {
	t.Helper()
	return netns.XDPProgramID(t, &netns.NS{Name: n.NetNS}, n.Interface)
}

// pins lists every file under the node's pin root, relative to it.
func pins(t *testing.T, n *localenv.Node) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(n.BPFFSRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(n.BPFFSRoot, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", n.BPFFSRoot, err)
	}
	sort.Strings(out)
	return out
}

// linksOf lists the ids of the kernel's links running program id.
func linksOf(t *testing.T, prog uint32) []uint32 {
	t.Helper()
	var out []uint32
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue
		}
		if uint32(info.Program) == prog {
			out = append(out, uint32(it.ID))
		}
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate links: %v", err)
	}
	return out
}

// checkClean asserts that node n runs exactly one XDP program on eth0, the
// one status reports for p with digest, through one link (the pinned one),
// that the pins under the node's root are exactly that program's (one
// uid: progs, maps, one link), and that the agent process holds no other
// program or link.
func checkClean(t *testing.T, n *localenv.Node, st *v1.ProgramState, agentPID int) (leaks []string) {
	t.Helper()
	kernel := xdpProgramID(t, n)
	if kernel == 0 || kernel != st.ID {
		leaks = append(leaks, fmt.Sprintf("eth0 runs XDP program %d, status says %d", kernel, st.ID))
	}
	if ls := linksOf(t, st.ID); len(ls) != 1 || ls[0] != st.LinkID {
		leaks = append(leaks, fmt.Sprintf("links running program %d: %v, want only status link %d", st.ID, ls, st.LinkID))
	}
	var links, other int
	for _, p := range pins(t, n) {
		parts := strings.Split(p, string(filepath.Separator))
		switch {
		case len(parts) != 3 || parts[0] != string(st.UID):
			other++
			leaks = append(leaks, "pin "+p)
		case parts[1] == "links":
			links++
		}
	}
	if links != 1 {
		leaks = append(leaks, fmt.Sprintf("%d link pins, want 1", links))
	}
	if agentPID > 0 {
		progs, lks := bpfFDs(t, agentPID)
		for _, id := range progs {
			if id != st.ID {
				leaks = append(leaks, fmt.Sprintf("agent holds program %d", id))
			}
		}
		for _, id := range lks {
			if id != st.LinkID {
				leaks = append(leaks, fmt.Sprintf("agent holds link %d", id))
			}
		}
	}
	return leaks
}

// bpfFDs lists the program and link ids a process holds file descriptors of.
func bpfFDs(t *testing.T, pid int) (progs, links []uint32) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Logf("read %s: %v", dir, err)
		return nil, nil
	}
	for _, ent := range ents {
		f, err := os.Open(filepath.Join(dir, ent.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		var prog, lnk uint32
		isLink := false
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			id, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			switch k {
			case "prog_id":
				prog = uint32(id)
			case "link_id":
				lnk, isLink = uint32(id), true
			}
		}
		f.Close()
		switch {
		case isLink:
			links = append(links, lnk)
		case prog != 0:
			progs = append(progs, prog)
		}
	}
	return progs, links
}

// agentProcess is a node's agent run as its own process (bpfleet-agent
// built with failpoints), so a test can SIGKILL it or let a failpoint do it.
type agentProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error
}

func (a *agentProcess) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.Write(b)
}

// Log returns what the agent printed so far.
func (a *agentProcess) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// startAgent runs n's agent as a process; failpoint ("" for none) is set
// as BPFLEET_FAILPOINT=failpoint:kill. The in-process agent of n must be
// stopped. The process is killed when the test ends.
func startAgent(t *testing.T, e *localenv.Env, n *localenv.Node, failpoint string, extraArgs ...string) *agentProcess {
	t.Helper()
	return startAgentWrapped(t, e, n, nil, failpoint, extraArgs...)
}

// startAgentWrapped is startAgent with the agent run by wrapper (a command
// and its arguments, e.g. unshare into a mount namespace of its own).
func startAgentWrapped(t *testing.T, e *localenv.Env, n *localenv.Node, wrapper []string, failpoint string, extraArgs ...string) *agentProcess {
	t.Helper()
	a := &agentProcess{done: make(chan struct{})}
	args := append([]string{
		"--node-name", n.Name,
		"--bpffs-root", n.BPFFSRoot,
		"--state-dir", filepath.Join(n.StateDir, "state"),
		"--cache-dir", filepath.Join(n.StateDir, "cache"),
		"--netns", "/var/run/netns/" + n.NetNS,
		"--resync-interval", "2s",
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
	}, extraArgs...)
	argv := append(append(append([]string(nil), wrapper...), agentBin), args...)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig, "BPFLEET_FAILPOINT=")
	if failpoint != "" {
		a.cmd.Env = append(a.cmd.Env, "BPFLEET_FAILPOINT="+failpoint+":kill")
	}
	a.cmd.Stdout, a.cmd.Stderr = a, a
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() { a.kill() })
	return a
}

// kill sends SIGKILL (no graceful shutdown) and waits for the exit.
func (a *agentProcess) kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// wait waits for the process to exit by itself.
func (a *agentProcess) wait(timeout time.Duration) error {
	select {
	case <-a.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("agent still running after %s", timeout)
	}
}

// exitCode is the exit code, or -1 for a signal.
func (a *agentProcess) exitCode() int { return a.cmd.ProcessState.ExitCode() }

// stopInProcessAgent stops n's in-process agent for the test and starts it
// again when the test ends.
func stopInProcessAgent(t *testing.T, e *localenv.Env, n *localenv.Node) {
	t.Helper()
	if err := e.StopAgent(n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.StartAgent(n); err != nil {
			t.Error(err)
		}
	})
}
