package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	kubectlbpf "github.com/bpfleet/bpfleet/cmd/kubectl-bpf/plugin"
	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// apply creates p and deletes it when the test ends, waiting until no node
// reports it any more.
func apply(t testing.TB, e *localenv.Env, p *v1.BpfProgram) {
	t.Helper()
	ctx := context.Background()
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatalf("create %s: %v", p.Name, err)
	}
	t.Cleanup(func() {
		if err := e.Client.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
			t.Errorf("delete %s: %v", p.Name, err)
		}
		waitNodes(t, e, fmt.Sprintf("no node reports %s", p.Name), func(s v1.BpfNodeState) bool {
			return entry(s, p.Name) == nil
		})
	})
}

// waitNodes polls until cond holds for every node's BpfNodeState.
func waitNodes(t testing.TB, e *localenv.Env, what string, cond func(v1.BpfNodeState) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, n := range e.Nodes {
			var s v1.BpfNodeState
			if err := e.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &s); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			if !cond(s) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("wait until %s: %v", what, err)
	}
}

func nodeState(t testing.TB, e *localenv.Env, node string) v1.BpfNodeState {
	t.Helper()
	var s v1.BpfNodeState
	if err := e.Client.Get(context.Background(), client.ObjectKey{Name: node}, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// entry is the node's program entry of a BpfProgram (specs here attach one
// program at one point per node).
func entry(s v1.BpfNodeState, bpfProgram string) *v1.ProgramState {
	for i := range s.Status.Programs {
		if s.Status.Programs[i].BpfProgram == bpfProgram {
			return &s.Status.Programs[i]
		}
	}
	return nil
}

// xdpProgramID is the id of the XDP program the kernel runs on the node's
// eth0 (0 when none), read with iproute2 inside the node's namespace.
func xdpProgramID(t testing.TB, n *localenv.Node) uint32 {
	t.Helper()
	return netns.XDPProgramID(t, &netns.NS{Name: n.NetNS}, n.Interface)
}

// kubectlBPF runs the kubectl-bpf plugin as a user would, through the
// kubeconfig, and returns its table as rows of column → value.
func kubectlBPF(t testing.TB, e *localenv.Env, args ...string) []map[string]string {
	t.Helper()
	var out bytes.Buffer
	cmd := kubectlbpf.NewCommand(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	cmd.SetArgs(append([]string{"--kubeconfig", e.Kubeconfig}, args...))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("kubectl bpf %v: %v\n%s", args, err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// Columns are separated by two or more spaces; ATTACH POINT has one.
	split := func(l string) []string {
		var f []string
		for _, c := range strings.Split(l, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				f = append(f, c)
			}
		}
		return f
	}
	header := split(lines[0])
	var rows []map[string]string
	for _, l := range lines[1:] {
		f := split(l)
		if len(f) != len(header) {
			t.Fatalf("row %q has %d columns, header %d:\n%s", l, len(f), len(header), out.String())
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = f[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// bundleVersion ships a copy of the bundle in srcDir under another version,
// which gives it another digest, as a developer's next release would.
func bundleVersion(t testing.TB, e *localenv.Env, srcDir, version string) localenv.PushedBundle {
	t.Helper()
	dir := t.TempDir()
	if err := testbundle.CopyWithVersion(srcDir, dir, version); err != nil {
		t.Fatal(err)
	}
	b, err := e.BuildPushSign(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// brokenFilterBundle ships an xdp-pod-filter release whose program the
// verifier rejects (it reads the packet without a bounds check): it passes
// every check the operator can make without a kernel and fails on nodes.
func brokenFilterBundle(t testing.TB, e *localenv.Env) localenv.PushedBundle {
	t.Helper()
	clang := privileged.RequireCommand(t, "clang")
	dir := t.TempDir()
	// No system headers: the context layout and the verdicts are spelled out.
	src := `struct xdp_md { unsigned int data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
__attribute__((section("xdp"), used)) int xdp_pod_filter(struct xdp_md *ctx) {
	unsigned char *data = (unsigned char *)(long)ctx->data;
	return data[100] == 0xde ? 1 /* XDP_DROP */ : 2 /* XDP_PASS */; /* no bounds check */
}
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
`
	if err := os.WriteFile(filepath.Join(dir, "broken.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(clang, "-O2", "-g", "-target", "bpf", "-c", "broken.c", "-o", "broken.o")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, out)
	}
	spec := "name: xdp-pod-filter\nversion: 0.3.0-broken\nobjects:\n  - file: broken.o\nprograms:\n  - name: xdp_pod_filter\n    attach: xdp\n"
	if err := os.WriteFile(filepath.Join(dir, "bundle.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := e.BuildPushSign(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// agentProcess is a node's agent run as its own process (bpfleet-agent), so
// a test can SIGKILL it.
type agentProcess struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startAgentProcess(t testing.TB, e *localenv.Env, n *localenv.Node) *agentProcess {
	t.Helper()
	var log bytes.Buffer
	cmd := exec.Command(agentBin,
		"--node-name", n.Name,
		"--bpffs-root", n.BPFFSRoot,
		"--state-dir", filepath.Join(n.StateDir, "state"),
		"--cache-dir", filepath.Join(n.StateDir, "cache"),
		"--netns", "/var/run/netns/"+n.NetNS,
		"--resync-interval", "5s",
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	return &agentProcess{cmd: cmd, log: &log}
}

// kill sends SIGKILL: no deferred cleanup, no graceful shutdown.
func (a *agentProcess) kill(t testing.TB) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill agent: %v", err)
	}
	_ = a.cmd.Wait()
}
