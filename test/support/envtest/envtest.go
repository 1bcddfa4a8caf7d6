// Package envtest starts a real etcd + kube-apiserver (built by `make tools`
// into bin/k8s) with bpfleet's CRDs installed, for tests that cross the API.
//
// Start it once per package from TestMain:
//
//	var env *envtest.Env
//
//	func TestMain(m *testing.M) { os.Exit(envtest.Run(m, &env)) }
package envtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	bpfleetscheme "github.com/bpfleet/bpfleet/api/scheme"
)

// Env is a running control plane.
type Env struct {
	// Config connects as cluster admin (system:masters).
	Config *rest.Config
	// Client is a controller-runtime client with bpfleet's scheme.
	Client client.Client
	// Scheme holds the client-go and bpfleet kinds.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for Config.
	Kubeconfig string
	// KubectlPath is the kubectl built with the control plane.
	KubectlPath string

	env *crenvtest.Environment
	dir string
}

// RepoRoot returns the directory holding go.mod, found upwards from the
// working directory (go test runs each package in its own directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts etcd and kube-apiserver on loopback with bpfleet's CRDs.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := filepath.Join(root, "bin", "k8s")
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("find control plane in %s (run `make tools`): %w", assets, err)
	}
	scheme := bpfleetscheme.New()
	env := &crenvtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	api := env.ControlPlane.GetAPIServer()
	// Keep everything on loopback: nothing advertises or reconciles an
	// address off this machine.
	api.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	cfg, err := env.Start()
	if err != nil {
		// Start can fail after etcd and the API server run (a CRD the API
		// server refuses): stop them, or they outlive the test.
		_ = env.Stop()
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	e := &Env{Config: cfg, Scheme: scheme, KubectlPath: filepath.Join(assets, "kubectl"), env: env}
	if err := e.init(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) init() error {
	c, err := client.New(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	e.Client = c
	dir, err := os.MkdirTemp("", "bpfleet-envtest-")
	if err != nil {
		return fmt.Errorf("create kubeconfig dir: %w", err)
	}
	e.dir = dir
	user, err := e.env.ControlPlane.AddUser(crenvtest.User{Name: "bpfleet-admin", Groups: []string{"system:masters"}}, e.Config)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("render kubeconfig: %w", err)
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// Stop stops the control plane and removes the kubeconfig.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	if err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}

// Kubectl runs the built kubectl against this control plane and returns its
// stdout; on failure the error carries stderr.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.KubectlPath, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %v: %w: %s", args, err, stderr.String())
	}
	return stdout.String(), nil
}

// Run starts the control plane, stores it in *env, starts the companions
// (controllers the package's tests rely on, such as a stand-in for the
// operator; each returns once started and stops when its context ends),
// runs the package's tests and stops it all. Use it from TestMain:
// os.Exit(envtest.Run(m, &env)). A control plane or companion that does not
// start fails the package.
func Run(m *testing.M, env **Env, companions ...func(context.Context, *Env) error) int {
	e, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		return 1
	}
	*env = e
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, start := range companions {
		if err := start(ctx, e); err != nil {
			fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
			_ = e.Stop()
			return 1
		}
	}
	code := m.Run()
	cancel()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
	}
	return code
}

// Eventually polls f every 50 ms until it returns nil, and fails the test
// with f's last error once timeout has passed: for what the API server and
// the controllers under test reach asynchronously.
func Eventually(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
