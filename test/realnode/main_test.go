// Package realnode installs bpfleet on a real single-node Kubernetes cluster
// (test/support/cluster: kubelet, containerd, runc, CNI, kube-proxy) exactly as the
// README's "Deploying on a cluster" says, and checks it as a user would:
// kubectl apply -k, signed bundles from a registry, real programs loaded by
// the agent pod, real kubelet-issued tokens, a DaemonSet rolling update and
// an operator failover under in-kernel traffic.
//
// The cluster starts once for the package. Before it, TestMain starts the
// harness in a child process, SIGKILLs it once the node is Ready, and the
// package's own start must clean up what the killed one left.
package realnode

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

var (
	suite    *env
	suiteErr error
	repoDir  string
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		suiteErr = fmt.Errorf("needs root (euid %d)", os.Geteuid())
		return m.Run()
	}
	root, err := envtest.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoDir = root
	stateDir := filepath.Join(root, "bin", "realnode-test")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	killed, err := startAndKill(ctx, stateDir)
	if err != nil {
		suiteErr = fmt.Errorf("start and SIGKILL a harness: %w", err)
		fmt.Fprintln(os.Stderr, suiteErr)
		return m.Run()
	}
	suite, suiteErr = setUp(ctx, stateDir, killed)
	if suiteErr != nil {
		fmt.Fprintf(os.Stderr, "set up the real node: %v\n", suiteErr)
		if suite != nil {
			suite.tearDown()
		}
		suite = nil
		return m.Run() // every test fails (CI) or skips with the reason
	}
	code := m.Run()
	if err := suite.tearDown(); err != nil {
		fmt.Fprintf(os.Stderr, "tear down the real node: %v\n", err)
		code = 1
	}
	return code
}

// startAndKill runs `go run ./test/tools/cluster` on stateDir until its node
// is Ready, then SIGKILLs it: what it leaves (mounts, the node's interface,
// cgroups, kube-proxy's tables, changed sysctls) is the next start's to clean.
// It returns how long the harness took to come up.
func startAndKill(ctx context.Context, stateDir string) (time.Duration, error) {
	bin := filepath.Join(os.TempDir(), "bpfleet-cluster-harness")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/tools/cluster")
	build.Dir = repoDir
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build the harness: %w: %s", err, out)
	}
	defer os.Remove(bin)
	cmd := exec.CommandContext(ctx, bin, "-state-dir", stateDir)
	cmd.Dir = repoDir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "A real node is up") {
			up := time.Since(began)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				return 0, err
			}
			_ = cmd.Wait()
			return up, nil
		}
	}
	return 0, fmt.Errorf("the harness exited before its node was Ready: %v", cmd.Wait())
}

// requireSuite gates every test: without root it skips locally, and under
// CI=true it fails.
func requireSuite(t *testing.T) *env {
	t.Helper()
	if suite == nil {
		privileged.SkipOrFail(t, "real node not running: %v", suiteErr)
	}
	return suite
}
