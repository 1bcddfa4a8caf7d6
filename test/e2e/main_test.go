// Package e2e runs bpfleet end to end on this machine: a real apiserver, a
// real registry, the operator and one agent per simulated node (each with its
// own network namespace), real programs in the real kernel. The environment
// is cmd/localenv's, started once for the package; every spec cleans up
// the BpfPrograms it makes.
//
//	go test ./test/e2e -args -e2e.keep   # leave the environment running after the tests
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry"
)

var (
	keep = flag.Bool("e2e.keep", false, "keep the environment running after the tests, until interrupted")

	env      *localenv.Env
	envErr   error
	agentBin string
	repoDir  string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		envErr = fmt.Errorf("needs root (euid %d)", os.Geteuid())
		return m.Run()
	}
	root, err := envtest.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoDir = root
	tmp, err := os.MkdirTemp("", "bpfleet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	agentBin = filepath.Join(tmp, "bpfleet-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/bpfleet/bpfleet/cmd/bpfleet-agent").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		return 1
	}
	// The registry is Debian's docker-registry (the distribution server), a
	// real registry of another make than the one bpfleet local embeds; CI
	// must have it, a developer without it gets the embedded one.
	var externalRegistry string
	if bin, err := exec.LookPath("docker-registry"); err == nil {
		reg, err := registry.LaunchDistribution(bin, filepath.Join(tmp, "registry"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer reg.Stop()
		externalRegistry = reg.Host
	} else if privileged.InCI() {
		fmt.Fprintln(os.Stderr, "CI=true: the e2e suite needs docker-registry (Debian package docker-registry)")
		return 1
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, envErr = localenv.Start(ctx, localenv.Options{
		RepoDir:      root,
		StateDir:     filepath.Join(tmp, "state"),
		Nodes:        3,
		APIPort:      freePort(),
		RegistryPort: freePort(),
		Registry:     externalRegistry,
		Prefix:       "e2e" + hex.EncodeToString(b),
		Out:          os.Stderr,
	})
	if envErr != nil {
		fmt.Fprintf(os.Stderr, "start environment: %v\n", envErr)
		return 1
	}
	// controller-runtime's package-level logs go to the environment's log
	// file, as the operator's and the agents' do.
	ctrl.SetLogger(env.Log)
	code := m.Run()
	if *keep {
		fmt.Fprintf(os.Stderr, "environment kept (-e2e.keep): KUBECONFIG=%s; interrupt to stop\n", env.Kubeconfig)
		waitForInterrupt()
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stopCancel()
	if err := env.DeleteAll(stopCtx, time.Minute); err != nil {
		fmt.Fprintf(os.Stderr, "delete programs: %v\n", err)
		code = 1
	}
	if err := env.Stop(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "stop environment: %v\n", err)
		code = 1
	}
	return code
}

// requireEnv gates every spec: without root it skips locally and fails
// under CI=true.
func requireEnv(t *testing.T) *localenv.Env {
	t.Helper()
	if env == nil {
		privileged.SkipOrFail(t, "end-to-end environment not running: %v", envErr)
	}
	return env
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
