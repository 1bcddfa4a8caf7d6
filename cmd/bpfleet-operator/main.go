// Command bpfleet-operator runs the bpfleet operator: it resolves and verifies
// BpfProgram bundles, rolls them out to nodes in waves and sums node reports.
package main

import (
	// The images hold nothing but the binary: no CA certificates. These
	// roots are used only when the system has none, so HTTPS pulls from
	// public registries verify.
	_ "golang.org/x/crypto/x509roots/fallback"

	"flag"
	"fmt"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/operator"
	"github.com/bpfleet/bpfleet/operator/program"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bpfleet-operator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr     = flag.String("metrics-bind-address", ":8080", "address the metrics endpoint binds to; 0 disables it")
		probeAddr       = flag.String("health-probe-bind-address", ":8081", "address the health and readiness probes bind to")
		leaderElect     = flag.Bool("leader-elect", true, "elect a leader with a Lease so only one replica reconciles")
		leaderNS        = flag.String("leader-election-namespace", "", "namespace of the leader election Lease; empty means the pod's namespace")
		registries      = flag.String("registries-config", "", "per-registry settings file (credentials, CA bundle, plain HTTP, insecure TLS per host); see docs/operations.md")
		plainHTTP       = flag.Bool("registry-plain-http", false, "talk plain HTTP to every registry (allowed for loopback hosts; others need -registry-insecure); prefer plainHTTP per host in -registries-config")
		insecure        = flag.Bool("registry-insecure", false, "allow plain HTTP and skip TLS verification for every registry; prefer per-host settings in -registries-config")
		dockerConfig    = flag.String("registry-config", "", "docker config.json with registry credentials (wins over the credentials of -registries-config); empty means the default location")
		registryTimeout = flag.Duration("registry-timeout", remote.DefaultTimeout, "bound on each registry operation")
		resync          = flag.Duration("resync-period", 5*time.Minute, "how often pullPolicy: Always tags are resolved again")
		cleanupTimeout  = flag.Duration("cleanup-timeout", program.DefaultCleanupTimeout, "how long a deleted BpfProgram waits for live nodes that still report it (agent down) before its finalizer is released with a NodesNotCleaned Event")
		trustNamespace  = flag.String("trust-namespace", trust.DefaultSecretNamespace, "the only namespace whose Secrets trust policies may name")
	)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Cache:                   operator.CacheOptions(),
		Scheme:                  scheme.New(),
		Metrics:                 metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        "bpfleet-operator.bpfleet.io",
		LeaderElectionNamespace: *leaderNS,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	remoteOpts := remote.Options{
		PlainHTTP:    *plainHTTP,
		Insecure:     *insecure,
		DockerConfig: *dockerConfig,
		Timeout:      *registryTimeout,
	}
	if *registries != "" {
		rc, err := remote.LoadConfig(*registries)
		if err != nil {
			return err
		}
		rc.Apply(&remoteOpts)
	}
	err = operator.Setup(ctx, mgr, operator.Options{
		Remote:         remoteOpts,
		ResyncPeriod:   *resync,
		TrustNamespace: *trustNamespace,
		CleanupTimeout: *cleanupTimeout,
	})
	if err != nil {
		return fmt.Errorf("set up reconcilers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}
