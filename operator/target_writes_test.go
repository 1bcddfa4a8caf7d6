package operator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestProgressWritesNoTarget: the operator writes a BpfProgram's
// BpfProgramTarget (what agents watch) with the rollout, then nodes
// attaching one by one make it patch the BpfProgram's status (node counts,
// then Ready) and never the target; deleting the program deletes the
// target at once, while the finalizer still waits for the nodes.
func TestProgressWritesNoTarget(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, "tprog", reg, pub)
	names := nodes(t, "tprog", 3)
	ref, digest := testbundle.Push(t, reg, "ebpf/tprog", "v1", testbundle.Source{})
	sign(t, ref, priv)
	ctx := context.Background()
	program(t, "tprog", ref, "tprog")
	p := waitCondition(t, "tprog", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)

	target := &v1.BpfProgramTarget{}
	envtest.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "tprog"}, target); err != nil {
			return err
		}
		if ro := target.Spec.Rollout; ro == nil || ro.TargetDigest != digest {
			return fmt.Errorf("target's rollout %+v, want target %s", ro, digest)
		}
		return nil
	})
	if s := target.Spec; s.ProgramUID != p.UID || s.ProgramGeneration != p.Generation || s.ResolvedDigest != digest || s.Program.Bundle.Image != ref {
		t.Fatalf("target spec %+v does not describe program %s (uid %s, generation %d)", s, p.Name, p.UID, p.Generation)
	}
	if o := metav1.GetControllerOf(target); o == nil || o.UID != p.UID || o.Kind != "BpfProgram" {
		t.Fatalf("target's controller %+v, want the BpfProgram %s", o, p.UID)
	}

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	from := func(rv string) client.ListOption {
		return &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}}
	}
	targets, err := wc.Watch(wctx, &v1.BpfProgramTargetList{}, from(target.ResourceVersion))
	if err != nil {
		t.Fatal(err)
	}
	defer targets.Stop()
	programs, err := wc.Watch(wctx, &v1.BpfProgramList{}, from(get(t, "tprog").ResourceVersion))
	if err != nil {
		t.Fatal(err)
	}
	defer programs.Stop()

	for i, node := range names {
		report(t, p, node, "6.18.0", digest, v1.PhaseAttached)
		envtest.Eventually(t, 30*time.Second, func() error {
			if got := get(t, "tprog").Status.Nodes.Attached; got != int32(i+1) {
				return fmt.Errorf("status.nodes.attached = %d, want %d", got, i+1)
			}
			return nil
		})
	}
	waitCondition(t, "tprog", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

	statusWrites, targetWrites := 0, 0
	drain := func(w watch.Interface, count *int, name string) {
		for {
			select {
			case ev := <-w.ResultChan():
				if o, ok := ev.Object.(client.Object); ok && o.GetName() == name && ev.Type == watch.Modified {
					*count++
				}
			case <-time.After(time.Second):
				return
			}
		}
	}
	drain(programs, &statusWrites, "tprog")
	drain(targets, &targetWrites, "tprog")
	if statusWrites < 3 {
		t.Fatalf("the BpfProgram was written %d times while 3 nodes attached, want at least 3 (each count, then Ready): the test proves nothing", statusWrites)
	}
	if targetWrites != 0 {
		t.Errorf("the BpfProgramTarget was written %d times while only progress changed, want 0", targetWrites)
	}

	// Deleted: the target goes first (agents detach), the finalizer waits
	// for the nodes that still report the program.
	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		err := env.Client.Get(ctx, client.ObjectKey{Name: "tprog"}, &v1.BpfProgramTarget{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("target of the deleted program: %v, want not found", err)
		}
		return nil
	})
	if get(t, "tprog").DeletionTimestamp.IsZero() {
		t.Fatalf("the program is gone already; the finalizer should wait for its nodes")
	}
	for _, node := range names {
		state := &v1.BpfNodeState{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, state); err != nil {
			t.Fatal(err)
		}
		state.Status.Programs = nil
		if err := env.Client.Status().Update(ctx, state); err != nil {
			t.Fatal(err)
		}
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		err := env.Client.Get(ctx, client.ObjectKey{Name: "tprog"}, &v1.BpfProgram{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleted program: %v, want gone once no node reports it", err)
		}
		return nil
	})
}
