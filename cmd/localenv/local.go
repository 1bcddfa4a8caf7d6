// Package localenv runs the whole of bpfleet on one machine: a real etcd and
// kube-apiserver on loopback, an OCI registry on 127.0.0.1, the operator, and
// one node agent per simulated node — each node with its own Node object,
// labels, bpffs subtree and network namespace holding its interfaces. The
// programs are real: they load into this kernel and filter real packets.
//
// It has two users, and its API serves both:
//   - local mode, cmd/bpfleet-local (make demo): Start, the demo's programs
//     (FilterProgram, ExecTraceProgram), WaitReady, SendTraffic, DeleteAll,
//     Stop;
//   - the suites that use it as their environment (test/e2e, test/faults):
//     the same, plus the controls that stop and start parts as a crash, an
//     upgrade or an outage would (StopOperator/StartOperator,
//     StopAgent/StartAgent, RestartEtcd), StartTraffic, and BuildPushSign to
//     ship new bundle versions.
//
// It is a library, not a command: it changes no process-wide state. The
// operator and the agents log through Env.Log; a caller that wants
// controller-runtime's package-level logs in the same file passes it to
// ctrl.SetLogger.
//
// It is not under an internal/ directory because Go admits an internal
// package only below the common parent of its importers (cmd/bpfleet-local
// and test/...), that is the module root, and the repository's top-level
// layout (api cmd operator nodeagent bpf bundles config test) has no
// internal/. It lives in cmd/ next to its command; it is not a public API.
package localenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/cmd/localenv/orphans"
)

// Options configure a local environment.
type Options struct {
	// RepoDir is the bpfleet checkout: bin/k8s (control plane), config/crd,
	// and bpf/ (the shipped bundles) are found below it.
	RepoDir string
	// StateDir keeps the kubeconfig, the cosign key pair, the registry's
	// data (kept across runs) and node state; default <RepoDir>/bin/local.
	StateDir string
	// Nodes is how many simulated nodes run an agent; default 3.
	Nodes int
	// APIPort is the apiserver's port on 127.0.0.1; default 6443.
	APIPort int
	// RegistryPort is the registry's port on 127.0.0.1; default 5000.
	RegistryPort int
	// Registry, when set, is an already running registry (host:port) to use
	// instead of starting the embedded one.
	Registry string
	// Prefix names the nodes (<prefix>-node-N), their network namespaces
	// and host interfaces, and the pin root /sys/fs/bpf/<prefix>-local, so
	// that two environments (a demo and a test run) never collide. Default
	// "bpfleet"; at most 10 characters.
	Prefix string
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

func (o *Options) defaults() {
	if o.StateDir == "" {
		o.StateDir = filepath.Join(o.RepoDir, "bin", "local")
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.APIPort == 0 {
		o.APIPort = 6443
	}
	if o.RegistryPort == 0 {
		o.RegistryPort = 5000
	}
	if o.Prefix == "" {
		o.Prefix = "bpfleet"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// Env is a running local environment.
type Env struct {
	// Config connects to the apiserver as cluster admin.
	Config *rest.Config
	// Client reads and writes through Config.
	Client client.Client
	// Kubeconfig is the path of a kubeconfig for Config.
	Kubeconfig string
	// Registry is the registry host, 127.0.0.1:PORT.
	Registry string
	// RemoteOptions reach the registry.
	RemoteOptions remote.Options
	// Bundles are the shipped bundles, pushed and signed, by bundle name.
	Bundles map[string]PushedBundle
	// Nodes are the simulated nodes.
	Nodes []*Node

	// LogFile receives the operator's and agents' logs.
	LogFile string
	// Log writes to LogFile; the operator and the agents log through it.
	// Callers that want controller-runtime's package-level logs there too
	// pass it to ctrl.SetLogger.
	Log logr.Logger

	opts     Options
	progress *progress
	cp       *crenvtest.Environment
	operator *operatorRun
	stops    []func(context.Context) error
	mu       sync.Mutex
}

// Start brings the environment up step by step, printing each step with its
// duration. On error everything started so far is torn down.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	opts.defaults()
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(opts.StateDir, "bpfleet.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	e := &Env{
		opts:     opts,
		progress: &progress{out: opts.Out, start: time.Now()},
		Bundles:  map[string]PushedBundle{},
		LogFile:  logFile.Name(),
		Log:      zap.New(zap.WriteTo(logFile), zap.UseDevMode(false)),
	}
	e.onStop(func(context.Context) error { return logFile.Close() })
	fmt.Fprintf(opts.Out, "     logs of the control plane's clients, operator and agents: %s\n", logFile.Name())
	defer func() {
		if err != nil {
			_ = e.Stop(context.Background())
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"check prerequisites", e.preflight},
		{"start etcd + kube-apiserver on 127.0.0.1", e.startControlPlane},
		{"start the OCI registry on 127.0.0.1", e.startRegistry},
		{"sign bundles: cosign key pair + BundleTrustPolicy", e.setupTrust},
		{"build, push and sign the shipped bundles", e.pushBundles},
		{fmt.Sprintf("create %d nodes: Node objects, network namespaces, veth interfaces", opts.Nodes), e.createNodes},
		{"start the operator", e.startOperator},
		{fmt.Sprintf("start %d node agents", opts.Nodes), e.startAgents},
	}
	for _, s := range steps {
		if err := e.progress.step(ctx, s.name, s.fn); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Step runs fn as a numbered, timed progress step (for callers that go on
// after Start, like the demo).
func (e *Env) Step(ctx context.Context, name string, fn func(context.Context) error) error {
	return e.progress.step(ctx, name, fn)
}

// Printf writes a line under the current step.
func (e *Env) Printf(format string, args ...any) {
	fmt.Fprintf(e.opts.Out, "      "+format+"\n", args...)
}

func (e *Env) onStop(fn func(context.Context) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stops = append(e.stops, fn)
}

// Stop tears everything down in reverse order: agents, operator, nodes
// (network namespaces and pins), registry, control plane. It returns every
// error it met, and goes on past them.
func (e *Env) Stop(ctx context.Context) error {
	e.mu.Lock()
	stops := e.stops
	e.stops = nil
	e.mu.Unlock()
	var errs []error
	for i := len(stops) - 1; i >= 0; i-- {
		if err := stops[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Env) preflight(context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("bpfleet local needs root: it loads eBPF programs, creates network namespaces and pins under /sys/fs/bpf (run it with sudo)")
	}
	for _, f := range []string{"kube-apiserver", "etcd", "kubectl"} {
		p := filepath.Join(e.opts.RepoDir, "bin", "k8s", f)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("find %s: %w (run `make tools` first)", p, err)
		}
	}
	// A run killed before its Stop left its etcd and kube-apiserver
	// running: stop them, or they hold the ports.
	if n, err := orphans.Reap(e.pidFile()); err != nil {
		return err
	} else if n > 0 {
		e.Printf("stopped %d processes a killed earlier run left running", n)
	}
	if len(e.opts.Prefix) > 10 {
		return fmt.Errorf("prefix %q is longer than 10 characters (interface names are limited to 15)", e.opts.Prefix)
	}
	ports := []int{e.opts.APIPort}
	if e.opts.Registry == "" {
		ports = append(ports, e.opts.RegistryPort)
	}
	for _, port := range ports {
		if err := portFree(port); err != nil {
			return err
		}
	}
	return os.MkdirAll(e.opts.StateDir, 0o700)
}

func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port 127.0.0.1:%d is taken (is another bpfleet local running? stop it or pick another port): %w", port, err)
	}
	return l.Close()
}

type progress struct {
	out   io.Writer
	start time.Time
	n     int
}

func (p *progress) step(ctx context.Context, name string, fn func(context.Context) error) error {
	p.n++
	fmt.Fprintf(p.out, "[%2d] %s ...\n", p.n, name)
	t := time.Now()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := fn(ctx); err != nil {
		fmt.Fprintf(p.out, "     FAILED after %s: %v\n", time.Since(t).Round(time.Millisecond), err)
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(p.out, "     done in %s (total %s)\n", time.Since(t).Round(time.Millisecond), time.Since(p.start).Round(100*time.Millisecond))
	return nil
}
