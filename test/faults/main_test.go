package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

var (
	env      *localenv.Env
	envErr   error
	agentBin string // bpfleet-agent built with -tags failpoints
	opBin    string // bpfleet-operator
	repoDir  string
	stateDir string
	proxy    *Proxy
	// v1Ref and v2Ref are two releases of the packet-of-death filter,
	// referenced through proxy; v1Digest and v2Digest their digests.
	v1Ref, v2Ref, v1Digest, v2Digest string
)

func TestMain(m *testing.M) {
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
	if _, err := os.Stat(filepath.Join(root, "bin", "k8s", "kube-apiserver")); err != nil {
		envErr = fmt.Errorf("no control plane in bin/k8s (make tools): %w", err)
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "bpfleet-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	agentBin = filepath.Join(tmp, "bpfleet-agent")
	if out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", agentBin, "github.com/bpfleet/bpfleet/cmd/bpfleet-agent").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent with failpoints: %v\n%s", err, out)
		return 1
	}
	opBin = filepath.Join(tmp, "bpfleet-operator")
	if out, err := exec.Command("go", "build", "-o", opBin, "github.com/bpfleet/bpfleet/cmd/bpfleet-operator").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build operator: %v\n%s", err, out)
		return 1
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stateDir = filepath.Join(tmp, "state")
	env, envErr = localenv.Start(ctx, localenv.Options{
		RepoDir:      root,
		StateDir:     stateDir,
		Nodes:        3,
		APIPort:      freePort(),
		RegistryPort: freePort(),
		Prefix:       "flt" + hex.EncodeToString(b),
		Out:          os.Stderr,
	})
	if envErr != nil {
		fmt.Fprintf(os.Stderr, "start environment: %v\n", envErr)
		return 1
	}
	// controller-runtime's package-level logs go to the environment's log
	// file, as the operator's and the agents' do.
	ctrl.SetLogger(env.Log)
	code := func() int {
		if err := setup(ctx, tmp); err != nil {
			fmt.Fprintf(os.Stderr, "set up faults: %v\n", err)
			return 1
		}
		return m.Run()
	}()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stopCancel()
	if err := env.DeleteAll(stopCtx, time.Minute); err != nil {
		fmt.Fprintf(os.Stderr, "delete programs: %v\n", err)
		code = 1
	}
	if proxy != nil {
		_ = proxy.Close()
	}
	if err := env.Stop(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "stop environment: %v\n", err)
		code = 1
	}
	return code
}

// setup puts a fault proxy in front of the registry, trusts bundles read
// through it (same key) and ships a second release of the filter.
func setup(ctx context.Context, tmp string) error {
	p, err := NewProxy(env.Registry)
	if err != nil {
		return err
	}
	proxy = p
	pub, err := os.ReadFile(filepath.Join(stateDir, "cosign.pub"))
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	policy := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "faults-proxy"},
		Spec: v1.BundleTrustPolicySpec{
			Images: []string{proxy.Host + "/bpfleet/*"},
			Keys:   []v1.TrustedKey{{Name: "local", PublicKey: string(pub)}},
		},
	}
	if err := env.Client.Create(ctx, policy); err != nil {
		return fmt.Errorf("create trust policy: %w", err)
	}
	b1, ok := env.Bundles["xdp-pod-filter"]
	if !ok {
		return fmt.Errorf("bundle xdp-pod-filter not pushed")
	}
	v1Ref, v1Digest = viaProxy(b1.Ref), b1.Digest
	b2, err := shipVersion(ctx, filepath.Join(repoDir, "bpf", "xdpfilter"), filepath.Join(tmp, "v2"), "0.2.0")
	if err != nil {
		return err
	}
	v2Ref, v2Digest = viaProxy(b2.Ref), b2.Digest
	if v1Digest == v2Digest {
		return fmt.Errorf("the second release has the first one's digest %s", v1Digest)
	}
	return nil
}

// viaProxy rewrites a reference to the local registry to go through proxy.
func viaProxy(ref string) string { return proxy.Host + strings.TrimPrefix(ref, env.Registry) }

// shipVersion copies the bundle in srcDir into dir under another version
// (another digest, as a developer's next release) and pushes and signs it.
func shipVersion(ctx context.Context, srcDir, dir, version string) (localenv.PushedBundle, error) {
	if err := testbundle.CopyWithVersion(srcDir, dir, version); err != nil {
		return localenv.PushedBundle{}, err
	}
	return env.BuildPushSign(ctx, dir)
}

// requireEnv gates every test: without root or the control plane it skips
// locally and fails under CI=true.
func requireEnv(t *testing.T) *localenv.Env {
	t.Helper()
	if env == nil {
		privileged.SkipOrFail(t, "fault environment not running: %v", envErr)
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
