package operator_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/operator"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

var env *envtest.Env

// TestMain does what envtest.Run does, and stops the operator before the
// control plane so the API server does not wait on its watches.
func TestMain(m *testing.M) {
	e, err := envtest.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		os.Exit(1)
	}
	env = e
	code := m.Run()
	if stopOperator != nil {
		stopOperator()
		<-operatorDone
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
	}
	os.Exit(code)
}

var (
	startOnce    sync.Once
	stopOperator context.CancelFunc
	operatorDone = make(chan struct{})
	// clock drives rollout pauses; tests step it.
	clock = clocktesting.NewFakeClock(time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC))
)

// startOperator runs the operator in this process, once for the package,
// against the test control plane, as `bpfleet local` does.
func startOperator(t testing.TB) {
	t.Helper()
	startOnce.Do(func() {
		// Reconcile errors only: they explain a failing wait.
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
		mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
			Cache:      operator.CacheOptions(),
			Scheme:     scheme.New(),
			Metrics:    metricsserver.Options{BindAddress: "0"},
			Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopOperator = cancel
		err = operator.Setup(ctx, mgr, operator.Options{Remote: remote.Options{PlainHTTP: true}, Clock: clock, CleanupTimeout: cleanupTimeout})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(operatorDone)
			if err := mgr.Start(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}()
	})
}
