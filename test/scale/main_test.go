package scale_test

import (
	"flag"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/bpfleet/bpfleet/test/support/envtest"
)

var env *envtest.Env

// Flags of the scale simulation; the defaults are the small run of `go test`.
var (
	flagNodes    = flag.Int("scale.nodes", envInt("BPFLEET_SCALE_NODES", 50), "simulated nodes (env BPFLEET_SCALE_NODES)")
	flagPrograms = flag.Int("scale.programs", envInt("BPFLEET_SCALE_PROGRAMS", 5), "BpfPrograms in the steady-state scenario (env BPFLEET_SCALE_PROGRAMS)")
	flagIdle     = flag.Duration("scale.idle", 20*time.Second, "idle period of the steady-state scenario")
	flagResync   = flag.Duration("scale.resync", 0, "agents' resync interval; 0 means 30s (the agent's default), or 5s when -scale.idle is under a minute so that the idle period sees resyncs")
	flagLoad     = flag.Duration("scale.load", 5*time.Millisecond, "simulated load latency per program")
	flagAttach   = flag.Duration("scale.attach", time.Millisecond, "simulated attach latency per program")
	flagMany     = flag.Bool("scale.many", false, "run TestManyPrograms (issue 21 item 2: add -scale.programs-1 programs to nodes running one)")
	flagUpgrade  = flag.Bool("scale.upgrade", false, "run TestApplyUpgrade at -scale.nodes (issue 21 item 3: apply one program, then upgrade it in two waves)")
	flagLimit    = flag.Duration("scale.limit", 10*time.Minute, "how long TestManyPrograms waits for convergence before it reports what it reached")
	flagShared   = flag.Bool("scale.shared", false, "simulate many nodes per manager: per-node caches of what controller.CacheOptions scopes to the node, one shared cache of the cluster-wide kinds (shared_test.go); the API server then sends every cluster-wide event once, not once per node")
	flagGroup    = flag.Int("scale.group", 100, "with -scale.shared, simulated nodes per manager")
	flagReport   = flag.String("scale.report", "", "write the Markdown report here (relative paths are relative to the repository root)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(envtest.Run(m, &env))
}
