// Package targets stands in for the operator's BpfProgramTarget writes in
// tests that run node agents without the operator: they write a
// BpfProgram's spec and status as the operator would, and agents read only
// targets. Mirror runs the operator's own writer (operator/program's
// WriteTarget and DeleteTarget) on every BpfProgram change.
package targets

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/operator/program"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// Mirror keeps every BpfProgram's BpfProgramTarget as the operator does
// (written when what agents read changes, deleted with the program or
// when it is being deleted) until ctx ends. It returns once its manager
// runs. Use it as an envtest.Run companion.
func Mirror(ctx context.Context, e *envtest.Env) error {
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("create target mirror: %w", err)
	}
	c := mgr.GetClient()
	err = ctrl.NewControllerManagedBy(mgr).
		Named("bpfprogramtarget-mirror").
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4}).
		For(&v1alpha1.BpfProgram{}).
		Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			p := &v1alpha1.BpfProgram{}
			err := c.Get(ctx, req.NamespacedName, p)
			switch {
			case apierrors.IsNotFound(err):
				return reconcile.Result{}, program.DeleteTarget(ctx, c, req.Name)
			case err != nil:
				return reconcile.Result{}, err
			case !p.DeletionTimestamp.IsZero():
				return reconcile.Result{}, program.DeleteTarget(ctx, c, req.Name)
			}
			_, err = program.WriteTarget(ctx, c, p)
			return reconcile.Result{}, err
		}))
	if err != nil {
		return fmt.Errorf("build target mirror: %w", err)
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("start target mirror: cache did not sync")
	}
	return nil
}
