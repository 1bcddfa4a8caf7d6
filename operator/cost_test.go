package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// At steady state the BpfProgram does not change: an agent's stats refresh
// and a Node heartbeat leave its status (and so its resourceVersion, which
// every watcher of it would see move) as it was.
func TestSteadyStateWritesNothing(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	names, _ := readyFleet(t, "steady", 2)
	// The reconciles the reports queued (delayed by NodeStateDelay) may
	// still run: they must not write either, so no settling is needed.
	before := get(t, "steady").ResourceVersion

	// An agent's stats refresh: run counts change, nothing the operator sums.
	state := &v1.BpfNodeState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: names[0]}, state); err != nil {
		t.Fatal(err)
	}
	for i := range state.Status.Programs {
		state.Status.Programs[i].RunCount += 1000
		state.Status.Programs[i].RunTimeNs += 15000
	}
	reconciled, _ := bpfProgramReconciles(t)
	if err := env.Client.Status().Update(ctx, state); err != nil {
		t.Fatal(err)
	}
	// A kubelet heartbeat: no readiness change, so it wakes no reconcile.
	setNodeReady(t, names[1], corev1.ConditionTrue)
	// The operator's cache drops run-time statistics, so the refresh wakes
	// no reconcile either. To wait for a reconcile rather than a time, a
	// label on the same BpfNodeState, which the cache sees after the
	// refresh, wakes the program's: it must find nothing to write.
	if err := env.Client.Get(ctx, client.ObjectKey{Name: names[0]}, state); err != nil {
		t.Fatal(err)
	}
	state.Labels = map[string]string{"test.bpfleet.io/steady": "1"}
	if err := env.Client.Update(ctx, state); err != nil {
		t.Fatal(err)
	}
	waitReconciles(t, reconciled, 1)
	if after := get(t, "steady"); after.ResourceVersion != before {
		t.Fatalf("the BpfProgram was written (resourceVersion %s -> %s) with nothing to change; status %+v",
			before, after.ResourceVersion, after.Status)
	}
}

// bpfProgramReconciles returns how many reconciles the bpfprogram
// controller has finished, and whether it is idle: nothing in its queue and
// no reconcile running (controller-runtime's own metrics).
func bpfProgramReconciles(t *testing.T) (done float64, idle bool) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	busy := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case f.GetName() == "controller_runtime_reconcile_total" && label(m, "controller") == "bpfprogram":
				done += m.GetCounter().GetValue()
			case f.GetName() == "workqueue_depth" && label(m, "name") == "bpfprogram",
				f.GetName() == "controller_runtime_active_workers" && label(m, "controller") == "bpfprogram":
				busy += m.GetGauge().GetValue()
			}
		}
	}
	return done, busy == 0
}

// waitReconciles waits until the bpfprogram controller has finished at least
// n reconciles more than since (a count bpfProgramReconciles returned) and
// is idle. Nothing else
// reconciles BpfPrograms in this package while a test waits (no parallel
// tests, no requeue shorter than a test), so those are the test's own.
func waitReconciles(t *testing.T, since float64, n int) {
	t.Helper()
	envtest.Eventually(t, 30*time.Second, func() error {
		done, idle := bpfProgramReconciles(t)
		if done < since+float64(n) || !idle {
			return fmt.Errorf("%v reconciles since, want %d, idle %v", done-since, n, idle)
		}
		return nil
	})
}

// BenchmarkConvergence500 measures, for 500 simulated agents reporting a
// digest attached at once, the time until the BpfProgram says Ready and how
// many times its status was written (node reports coalesce in the work
// queue: far fewer writes than reports). Run with -bench Convergence -benchtime 1x.
func BenchmarkConvergence500(b *testing.B) {
	const fleet = 500
	ctx := context.Background()
	startOperator(b)
	reg := registry.Start(b, registry.Options{})
	priv, pub := keyPair(b)
	trustPolicy(b, "scale", reg, pub)
	ref, digest := testbundle.Push(b, reg, "ebpf/scale", "v1", testbundle.Source{})
	sign(b, ref, priv)
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("scale%d", i)
		var names []string
		for j := range fleet {
			names = append(names, fmt.Sprintf("%s-%04d", prefix, j))
		}
		parallel(b, names, func(n string) error {
			return env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"bpfleet.io/test": prefix}}})
		})
		p := program(b, prefix, ref, prefix)
		waitCondition(b, prefix, v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
		envtest.Eventually(b, time.Minute, func() error {
			if n := get(b, prefix).Status.Nodes.Selected; n != fleet {
				return fmt.Errorf("%d nodes selected", n)
			}
			return nil
		})
		p = get(b, prefix)
		w, err := wc.Watch(ctx, &v1.BpfProgramList{}, client.MatchingFields{"metadata.name": prefix})
		if err != nil {
			b.Fatal(err)
		}
		writes := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range w.ResultChan() {
				writes++
			}
		}()
		b.ResetTimer()
		start := time.Now()
		parallel(b, names, func(n string) error {
			state := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: n}}
			if err := env.Client.Create(ctx, state); err != nil {
				return err
			}
			for _, a := range p.Spec.Programs {
				state.Status.Programs = append(state.Status.Programs, v1.ProgramState{
					BpfProgram: p.Name, UID: p.UID, Digest: digest, Program: a.Name, State: v1.PhaseAttached})
			}
			state.Status.Kernel = v1.KernelInfo{Release: "6.18.0", BTF: true}
			return env.Client.Status().Update(ctx, state)
		})
		reported := time.Since(start)
		waitCondition(b, prefix, v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
		converged := time.Since(start)
		b.StopTimer()
		w.Stop()
		<-done
		b.ReportMetric(reported.Seconds(), "s-reports")
		b.ReportMetric(converged.Seconds(), "s-to-ready")
		b.ReportMetric(float64(writes), "program-writes")
		parallel(b, names, func(n string) error {
			return client.IgnoreNotFound(env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}))
		})
		// The node-state garbage collector removes the 500 states.
		envtest.Eventually(b, 2*time.Minute, func() error {
			var states v1.BpfNodeStateList
			if err := env.Client.List(ctx, &states); err != nil {
				return err
			}
			for _, s := range states.Items {
				if strings.HasPrefix(s.Name, prefix+"-") {
					return fmt.Errorf("node state %s not collected", s.Name)
				}
			}
			return nil
		})
	}
}
