// Command bpfleet-agent is the per-node agent: it keeps the node's eBPF
// programs as the cluster's BpfPrograms declare them and reports them in the
// node's BpfNodeState. Wiring only; the work is in nodeagent/controller.
package main

import (
	// The images hold nothing but the binary: no CA certificates. These
	// roots are used only when the system has none, so HTTPS pulls from
	// public registries verify.
	_ "golang.org/x/crypto/x509roots/fallback"

	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/cleanup"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
)

// version is set with -ldflags "-X main.version=…"; else the module version.
var version = ""

func main() {
	var opts controller.Options
	flag.StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "Name of this node (default $NODE_NAME).")
	flag.StringVar(&opts.BPFFSRoot, "bpffs-root", bpffs.DefaultRoot, "bpffs directory of the agent's own holding its pins: not a bpffs mount root, and holding nothing bpfleet did not make (the agent refuses to start otherwise).")
	flag.StringVar(&opts.EventsAddr, "events-bind-address", "0", "Address of the event streams kubectl bpf events reads, over TLS (0 disables).")
	flag.StringVar(&opts.HostRoot, "host-root", "", "where the node's root filesystem is mounted in the agent's container (uprobe targets are its paths); empty when the agent runs on the node's own.")
	flag.StringVar(&opts.StateDir, "state-dir", dataplane.DefaultStateDir, "Directory for local records and the agent lock.")
	flag.StringVar(&opts.CacheDir, "cache-dir", "", "Bundle cache directory (default <state-dir>/bundles).")
	flag.StringVar(&opts.NetNS, "netns", "", "Network namespace path whose interfaces are managed (default: the agent's own).")
	flag.DurationVar(&opts.ResyncInterval, "resync-interval", 30*time.Second, "Periodic resync: drift healing and interface re-attachment.")
	flag.BoolVar(&opts.Stats, "stats", false, "Turn on the kernel's run-time statistics (run count, run time per program).")
	flag.DurationVar(&opts.StatsInterval, "stats-interval", 0, "Write fresh run-time statistics into BpfNodeState this often (0: never; metrics are always fresh).")
	flag.DurationVar(&opts.VerifyTTL, "verify-ttl", controller.DefaultVerifyTTL, "How long a verified bundle signature stands before it is checked again.")
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "Address of /metrics (0 disables).")
	flag.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz (0 disables).")
	registries := flag.String("registries-config", "", "Per-registry settings file (credentials, CA bundle, plain HTTP, insecure TLS per host); see docs/operations.md.")
	flag.BoolVar(&opts.Registry.PlainHTTP, "registry-plain-http", false, "Talk plain HTTP to every registry (automatic for loopback); needs --registry-insecure. Prefer plainHTTP per host in --registries-config.")
	flag.BoolVar(&opts.Registry.Insecure, "registry-insecure", false, "Allow plain HTTP and skip TLS verification for every registry. Prefer per-host settings in --registries-config.")
	flag.StringVar(&opts.Registry.DockerConfig, "registry-config", "", "docker config.json with registry credentials (wins over the credentials of --registries-config).")
	flag.DurationVar(&opts.Registry.Timeout, "registry-timeout", remote.DefaultTimeout, "Bound on each registry operation.")
	flag.StringVar(&opts.TrustNamespace, "trust-namespace", trust.DefaultSecretNamespace, "The only namespace whose Secrets trust policies may name.")
	flag.DurationVar(&opts.UnmanagedInterval, "unmanaged-interval", controller.DefaultUnmanagedInterval, "Least time between two status writes carrying a changed inventory of programs bpfleet did not load (negative: no inventory).")
	cleanupOnly := flag.Bool("cleanup", false, "Uninstall step: remove every pin bpfleet made under --bpffs-root (detaching its links), its records in --state-dir and the bundle cache, then exit. Refuses a root holding pins bpfleet did not make, and a state directory a running agent holds.")
	mountOnly := flag.Bool("mount-filesystems-only", false, "Mount bpffs at /sys/fs/bpf and tracefs at /sys/kernel/tracing when missing, then exit (the DaemonSet's init step).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *mountOnly {
		if err := errors.Join(bpffs.MountBPFFS(), bpffs.MountTracefs()); err != nil {
			fmt.Fprintln(os.Stderr, "bpfleet-agent: mount filesystems:", err)
			os.Exit(1)
		}
		return
	}

	if *registries != "" {
		cfg, err := remote.LoadConfig(*registries)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bpfleet-agent:", err)
			os.Exit(2)
		}
		cfg.Apply(&opts.Registry)
	}
	if *cleanupOnly {
		rep, err := cleanup.Run(cleanup.Options{BPFFSRoot: opts.BPFFSRoot, StateDir: opts.StateDir, CacheDir: opts.CacheDir})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bpfleet-agent:", err)
			os.Exit(1)
		}
		fmt.Printf("bpfleet-agent: removed the pins of %d BpfProgram(s) under %s and %d record(s) in %s\n",
			len(rep.Programs), opts.BPFFSRoot, rep.Records, opts.StateDir)
		return
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	opts.Version = agentVersion()
	opts.Log = ctrl.Log.WithName("bpfleet-agent")
	if opts.NodeName == "" {
		fmt.Fprintln(os.Stderr, "bpfleet-agent: --node-name or $NODE_NAME is required")
		os.Exit(2)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bpfleet-agent: load kubeconfig:", err)
		os.Exit(1)
	}
	if err := controller.Run(ctrl.SetupSignalHandler(), cfg, opts); err != nil {
		fmt.Fprintln(os.Stderr, "bpfleet-agent:", err)
		os.Exit(1)
	}
}

func agentVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
