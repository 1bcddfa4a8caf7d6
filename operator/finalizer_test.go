package operator_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// cleanupTimeout is the operator's CleanupTimeout in this package: long
// enough for a test to watch a deletion wait, short enough to see it pass.
const cleanupTimeout = 15 * time.Second

// unreport removes p from node's BpfNodeState, as its agent does once it
// detached and unpinned p.
func unreport(t testing.TB, p *v1.BpfProgram, node string) {
	t.Helper()
	ctx := context.Background()
	state := &v1.BpfNodeState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, state); err != nil {
		t.Fatal(err)
	}
	state.Status.Programs = slices.DeleteFunc(state.Status.Programs, func(e v1.ProgramState) bool { return e.UID == p.UID })
	if err := env.Client.Status().Update(ctx, state); err != nil {
		t.Fatalf("unreport %s on %s: %v", p.Name, node, err)
	}
}

// deleteProgram deletes p and returns when the API server has marked it.
func deleteProgram(t testing.TB, p *v1.BpfProgram) {
	t.Helper()
	if err := env.Client.Delete(context.Background(), p); err != nil {
		t.Fatalf("delete %s: %v", p.Name, err)
	}
}

// gone tells whether BpfProgram name no longer exists.
func gone(t testing.TB, name string) bool {
	t.Helper()
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &v1.BpfProgram{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return apierrors.IsNotFound(err)
}

func waitGone(t testing.TB, name string, within time.Duration) {
	t.Helper()
	envtest.Eventually(t, within, func() error {
		if !gone(t, name) {
			return fmt.Errorf("BpfProgram %s still exists", name)
		}
		return nil
	})
}

// stays asserts that BpfProgram name still exists, marked for deletion,
// for d.
func stays(t testing.TB, name string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if gone(t, name) {
			t.Fatalf("BpfProgram %s released while a live node still reports it", name)
		}
	}
	if get(t, name).DeletionTimestamp.IsZero() {
		t.Fatalf("BpfProgram %s is not marked for deletion", name)
	}
}

func TestFinalizerAdded(t *testing.T) {
	startOperator(t)
	_, p := readyFleet(t, "fin-added", 1)
	if !slices.Contains(p.Finalizers, v1.FinalizerNodeCleanup) {
		t.Fatalf("finalizers %v, want %s", p.Finalizers, v1.FinalizerNodeCleanup)
	}
}

// TestDeletionWaitsForNodes: a deleted BpfProgram stays until every live
// node stops reporting it, a node that is gone (Node deleted) does not
// hold it, and nodes whose agents are down hold it for the cleanup timeout
// only, after which a Warning Event names them.
func TestDeletionWaitsForNodes(t *testing.T) {
	startOperator(t)
	tests := []struct {
		name string
		// release makes the nodes let go of p, or does nothing (agents down).
		release func(t *testing.T, p *v1.BpfProgram, nodes []string)
		// within is how long the release may take to free p.
		within time.Duration
		// event is the Warning Event reason expected on p, if any.
		event string
	}{{
		name: "agents detach",
		release: func(t *testing.T, p *v1.BpfProgram, nodes []string) {
			unreport(t, p, nodes[0])
			stays(t, p.Name, 2*time.Second) // nodes[1] still reports it
			unreport(t, p, nodes[1])
		},
		within: 5 * time.Second,
	}, {
		name: "node deleted",
		release: func(t *testing.T, p *v1.BpfProgram, nodes []string) {
			unreport(t, p, nodes[0])
			// nodes[1] vanished with its agent: its state is stale forever.
			if err := env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodes[1]}}); err != nil {
				t.Fatal(err)
			}
		},
		within: 5 * time.Second,
	}, {
		name:    "agents down",
		release: func(*testing.T, *v1.BpfProgram, []string) {},
		within:  cleanupTimeout + 10*time.Second,
		event:   v1.ReasonNodesNotCleaned,
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, p := readyFleet(t, fmt.Sprintf("fin-wait-%d", i), 2)
			deleteProgram(t, p)
			stays(t, p.Name, 2*time.Second)
			tt.release(t, p, nodes)
			waitGone(t, p.Name, tt.within)
			if tt.event != "" {
				e := waitEvent(t, p.Name, tt.event, nodes[0])
				if e.Type != corev1.EventTypeWarning {
					t.Errorf("event %s is %s, want Warning", e.Reason, e.Type)
				}
			}
		})
	}
}
