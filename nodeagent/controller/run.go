package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"golang.org/x/sys/unix"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/bundles/cache"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/internal/events"
	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
	"github.com/bpfleet/bpfleet/nodeagent/internal/pods"
	"github.com/bpfleet/bpfleet/nodeagent/internal/reviewauth"
	"github.com/bpfleet/bpfleet/nodeagent/metrics"
)

// bundleCacheKeepUnused is how long a bundle no program needs any more stays
// in the node's cache: a program deleted and applied again within it loads
// without the registry (the apply benchmark re-applies one bundle).
const bundleCacheKeepUnused = 10 * time.Minute

// Options configure one node agent.
type Options struct {
	// NodeName is the node the agent manages (required).
	NodeName string
	// BPFFSRoot is where pins live; default /sys/fs/bpf/bpfleet.
	BPFFSRoot string
	// EventsOut receives the JSON lines of programs' events; default
	// standard output.
	EventsOut io.Writer
	// EventsAddr serves event streams (kubectl bpf events) over TLS;
	// "0" or "" disables.
	EventsAddr string
	// HostRoot is where the node's root filesystem is mounted in the
	// agent's container, for uprobe targets; "" when the agent runs on the
	// node's own.
	HostRoot string
	// StateDir holds the local records and the agent lock; default /var/lib/bpfleet.
	StateDir string
	// CacheDir holds pulled bundles; default <StateDir>/bundles.
	CacheDir string
	// NetNS is the network namespace whose interfaces are managed
	// (/var/run/netns/x); "" means the agent's own.
	NetNS string
	// ResyncInterval reconciles periodically; default 30s.
	ResyncInterval time.Duration
	// Stats turns the kernel's run-time statistics on.
	Stats bool
	// StatsInterval writes fresh statistics into status this often; zero never.
	StatsInterval time.Duration
	// UnmanagedInterval is the least time between two status writes
	// carrying a changed inventory of the programs bpfleet did not load, so
	// that a churning third-party loader cannot flood the API server; zero
	// means DefaultUnmanagedInterval, negative turns the inventory off.
	UnmanagedInterval time.Duration
	// MetricsAddr serves /metrics; "0" or "" disables.
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz; "0" or "" disables.
	HealthAddr string
	// Registry configures bundle pulls and signature reads.
	Registry remote.Options
	// VerifyTTL is how long a verified digest stands before its signature is
	// checked again; default DefaultVerifyTTL.
	VerifyTTL time.Duration
	// Version is written to status.agentVersion.
	Version string
	// TrustNamespace is the only namespace trust-policy keys are read from
	// (Secrets); default trust.DefaultSecretNamespace.
	TrustNamespace string
	// Log is the agent's logger; zero means controller-runtime's.
	Log logr.Logger
	// BootID and KernelRelease, when set, replace what the kernel says
	// (/proc/sys/kernel/random/boot_id, uname -r): a test simulates a reboot
	// or a kernel upgrade with them.
	BootID, KernelRelease string
}

func (o *Options) defaults() error {
	if o.NodeName == "" {
		return errNoNode
	}
	if o.EventsOut == nil {
		o.EventsOut = os.Stdout
	}
	if o.BPFFSRoot == "" {
		o.BPFFSRoot = bpffs.DefaultRoot
	}
	if o.StateDir == "" {
		o.StateDir = dataplane.DefaultStateDir
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(o.StateDir, "bundles")
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 30 * time.Second
	}
	if o.UnmanagedInterval == 0 {
		o.UnmanagedInterval = DefaultUnmanagedInterval
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0"
	}
	if o.Log.GetSink() == nil {
		o.Log = ctrl.Log.WithName("bpfleet-agent")
	}
	return nil
}

// ErrLocked is returned when another agent holds the state directory.
var ErrLocked = errors.New("another bpfleet agent holds the state directory")

// LockFile is the lock's file name in the state directory.
const LockFile = "agent.lock"

// Lock takes an exclusive lock on stateDir/agent.lock so that two agents
// never manage the same node state; the returned function releases it.
// Errors wrap ErrLocked when another agent (in this or another process)
// holds it.
func Lock(stateDir string) (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	path := filepath.Join(stateDir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	// flock locks belong to the open file description, so a second Lock in
	// the same process conflicts too.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by %s", ErrLocked, path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// Run runs one node agent until ctx ends: it locks the state directory,
// opens the dataplane (re-adopting what a previous agent pinned) and the
// bundle cache, and runs a manager scoped to the node. Several agents with
// distinct node names, state directories and bpffs roots may run in one
// process. Stopping never detaches: pins keep the programs running.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	unlock, err := Lock(opts.StateDir)
	if err != nil {
		return err
	}
	defer unlock()

	agentMetrics := metrics.NewAgent(opts.NodeName)
	dp, err := dataplane.New(ctx, dataplane.Options{
		BPFFSRoot:     opts.BPFFSRoot,
		StateDir:      opts.StateDir,
		HostRoot:      opts.HostRoot,
		Stats:         opts.Stats,
		Log:           opts.Log.WithName("dataplane"),
		NetNS:         opts.NetNS,
		BootID:        opts.BootID,
		KernelRelease: opts.KernelRelease,
		Observe:       agentMetrics.ObservePhase,
	})
	if err != nil {
		return fmt.Errorf("open dataplane: %w", err)
	}
	defer dp.Close()
	kernel := Kernel{DP: dp}

	bundleCache, err := cache.Open(opts.CacheDir, remote.New(opts.Registry))
	if err != nil {
		return fmt.Errorf("open bundle cache: %w", err)
	}
	bundleCache.KeepUnused = bundleCacheKeepUnused

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme.New(),
		Logger: opts.Log,
		Cache:  CacheOptions(opts.NodeName),
		// hostNetwork puts /metrics on every interface of the node: serve
		// it over TLS, to callers whose token may get /metrics.
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsAddr, SecureServing: true, FilterProvider: reviewedMetrics},
		HealthProbeBindAddress: disabled(opts.HealthAddr),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if opts.HealthAddr != "" && opts.HealthAddr != "0" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return fmt.Errorf("add health check: %w", err)
		}
		checks := map[string]healthz.Checker{"informers": synced(mgr.GetCache())}
		if opts.MetricsAddr != "" && opts.MetricsAddr != "0" {
			checks["metrics"] = listening(opts.MetricsAddr)
		}
		if opts.EventsAddr != "" && opts.EventsAddr != "0" {
			checks["events"] = listening(opts.EventsAddr)
		}
		for name, check := range checks {
			if err := mgr.AddReadyzCheck(name, check); err != nil {
				return fmt.Errorf("add ready check %s: %w", name, err)
			}
		}
	}
	layout := bpffs.Layout{Root: opts.BPFFSRoot}
	// A digest's metric maps never change: read each bundle's manifest
	// once, not on every scrape.
	var metricMapNames sync.Map // digest → []string
	if err := agentMetrics.Register(metrics.Source{
		Snapshot: kernel.Snapshot,
		MetricMaps: func(uid types.UID, digest string) map[string]string {
			names, ok := metricMapNames.Load(digest)
			if !ok {
				b, err := bundleCache.Lookup(ctx, digest)
				if err != nil {
					return nil
				}
				names, _ = metricMapNames.LoadOrStore(digest, b.Manifest.MetricMaps)
			}
			paths := map[string]string{}
			for _, name := range names.([]string) {
				paths[name] = layout.Map(uid, name)
			}
			return paths
		},
	}, nil); err != nil {
		return err
	}
	defer agentMetrics.Unregister()
	eventMetrics := events.NewMetrics()
	if err := eventMetrics.Register(opts.NodeName, nil); err != nil {
		return err
	}
	defer eventMetrics.Unregister()

	r := &Reconciler{
		Client:    mgr.GetClient(),
		NodeName:  opts.NodeName,
		Dataplane: kernel,
		Bundles:   bundleCache,
		Verifier: &VerifyMemo{
			Verifier: &trust.Verifier{Remote: opts.Registry, Keys: trust.SecretKeys(mgr.GetAPIReader(), opts.TrustNamespace)},
			TTL:      opts.VerifyTTL,
		},
		Recorder: mgr.GetEventRecorder("bpfleet-agent"),
		Version:  opts.Version,
		Written:  &WrittenStatus{},
		Pods:     &pods.Finder{CgroupRoot: attach.CgroupRoot()},
		Triggers: Triggers{ResyncInterval: opts.ResyncInterval, StatsInterval: opts.StatsInterval},
		Metrics:  agentMetrics,
		Programs: mgr.GetAPIReader(),
	}
	if opts.UnmanagedInterval > 0 {
		r.Inventory = &inventory.Scanner{Root: opts.BPFFSRoot}
		r.UnmanagedLimiter = &inventory.Limiter{Interval: opts.UnmanagedInterval}
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}
	streamer := newStreamer(opts, mgr.GetClient(), kernel, bundleCache, layout, eventMetrics)
	if err := mgr.Add(streamer); err != nil {
		return fmt.Errorf("add event streamer: %w", err)
	}
	if opts.EventsAddr != "" && opts.EventsAddr != "0" {
		srv, err := newEventServer(opts, cfg, mgr.GetClient(), streamer)
		if err != nil {
			return err
		}
		if err := mgr.Add(srv); err != nil {
			return fmt.Errorf("add event server: %w", err)
		}
	}
	opts.Log.Info("starting node agent", "node", opts.NodeName, "bpffsRoot", opts.BPFFSRoot, "stateDir", opts.StateDir, "netns", opts.NetNS)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// reviewedMetrics authenticates scrapers with a TokenReview and authorizes
// them with a SubjectAccessReview for get on /metrics (ClusterRole
// bpfleet-metrics-reader grants it).
func reviewedMetrics(c *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(c, hc)
	if err != nil {
		return nil, fmt.Errorf("create review client: %w", err)
	}
	rev := &reviewauth.Reviewer{Client: cs}
	return func(_ logr.Logger, next http.Handler) (http.Handler, error) { return rev.Wrap(next), nil }, nil
}

func disabled(addr string) string {
	if addr == "" {
		return "0"
	}
	return addr
}
