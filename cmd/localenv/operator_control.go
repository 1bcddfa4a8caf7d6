package localenv

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/operator"
)

// operatorRun is the operator running in this process.
type operatorRun struct {
	cancel context.CancelFunc
	done   chan error
}

// StartOperator starts the operator in this process, with a new manager (a
// fresh cache, no state carried over), like a new operator pod. It fails
// when one runs already.
func (e *Env) StartOperator(ctx context.Context) error {
	e.mu.Lock()
	running := e.operator != nil
	e.mu.Unlock()
	if running {
		return errors.New("the operator runs already")
	}
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Cache:                  operator.CacheOptions(),
		Scheme:                 scheme.New(),
		Logger:                 e.Log,
		Metrics:                server.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		// A restarted operator registers its controllers again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fmt.Errorf("create operator manager: %w", err)
	}
	if err := operator.Setup(ctx, mgr, operator.Options{Remote: e.RemoteOptions}); err != nil {
		return fmt.Errorf("set up operator: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	run := &operatorRun{cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- mgr.Start(runCtx) }()
	e.mu.Lock()
	e.operator = run
	e.mu.Unlock()
	return nil
}

// StopOperator stops the operator as abruptly as a manager allows (its
// context cancelled mid-reconcile, no hand-over) and waits until it is
// gone. It does nothing when none runs.
func (e *Env) StopOperator() error {
	e.mu.Lock()
	run := e.operator
	e.operator = nil
	e.mu.Unlock()
	if run == nil {
		return nil
	}
	run.cancel()
	if err := <-run.done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("operator: %w", err)
	}
	return nil
}
