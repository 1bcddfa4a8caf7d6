package controller_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/cleanup"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// attachedFilter runs the XDP filter dropping deniedPort under a fresh
// agent, stops the agent, and returns the program: its pins alone keep it
// running.
func attachedFilter(t *testing.T, w *world) *v1alpha1.BpfProgram {
	t.Helper()
	ref, digest := w.push(t, "v1", "0.1.0", true)
	a := w.startAgent(t)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.waitEntry(t, p, "attached", attachedAt(digest))
	if got := w.delivered(t, deniedPort, 5); got != 0 {
		t.Fatalf("%d of 5 datagrams to the denied port delivered with the filter attached", got)
	}
	a.stop()
	if got := w.delivered(t, deniedPort, 5); got != 0 {
		t.Fatalf("%d of 5 datagrams delivered after the agent stopped: the pins should keep the filter", got)
	}
	return p
}

func deleteAndWait(t *testing.T, p *v1alpha1.BpfProgram) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "BpfProgram gone", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), &v1alpha1.BpfProgram{})
		return apierrors.IsNotFound(err), "still there"
	})
}

// TestStartRemovesPinsOfDeletedPrograms: a BpfProgram deleted while its
// node's agent was down keeps running on its pins until the agent starts
// again, which detaches and unpins it.
func TestStartRemovesPinsOfDeletedPrograms(t *testing.T) {
	w := newWorld(t)
	p := attachedFilter(t, w)
	deleteAndWait(t, p)
	if left := w.bpffsLeft(t); len(left) == 0 {
		t.Fatal("pins gone while no agent ran")
	}
	w.startAgent(t)
	eventually(t, 30*time.Second, "pins removed", func() (bool, string) {
		left := w.bpffsLeft(t)
		return len(left) == 0, filepath.Join(left...)
	})
	if got := w.delivered(t, deniedPort, 5); got != 5 {
		t.Errorf("%d of 5 datagrams delivered after the agent removed the deleted filter", got)
	}
	eventually(t, 10*time.Second, "no status entry", func() (bool, string) {
		es := entriesOf(w.state(t), p.UID)
		return len(es) == 0, "entries remain"
	})
}

// TestCleanupRemovesOnlyBpfleetPins: bpfleet-agent --cleanup detaches and
// unpins what bpfleet left after an uninstall, and refuses (removing
// nothing) a pin root holding something bpfleet did not make, or a state
// directory a running agent holds.
func TestCleanupRemovesOnlyBpfleetPins(t *testing.T) {
	w := newWorld(t)
	p := attachedFilter(t, w)
	opts := cleanup.Options{BPFFSRoot: w.root, StateDir: w.stateDir}

	foreign := filepath.Join(w.root, "cilium")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := cleanup.Run(opts); !errors.Is(err, bpffs.ErrUnsafeRoot) {
		t.Fatalf("cleanup with a foreign directory in the root: %v, want %v", err, bpffs.ErrUnsafeRoot)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("foreign directory touched: %v", err)
	}
	if got := w.delivered(t, deniedPort, 5); got != 0 {
		t.Fatalf("refused cleanup detached the filter: %d of 5 delivered", got)
	}
	if err := os.Remove(foreign); err != nil {
		t.Fatal(err)
	}

	unlock, err := controller.Lock(w.stateDir) // as a running agent holds it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cleanup.Run(opts); !errors.Is(err, controller.ErrLocked) {
		t.Fatalf("cleanup while an agent runs: %v, want %v", err, controller.ErrLocked)
	}
	unlock()
	if got := w.delivered(t, deniedPort, 5); got != 0 {
		t.Fatalf("refused cleanup detached the filter: %d of 5 delivered", got)
	}

	rep, err := cleanup.Run(opts)
	if err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if !slices.Contains(rep.Programs, p.UID) || rep.Records != 1 {
		t.Errorf("report %+v, want the pins and the record of %s", rep, p.UID)
	}
	if _, err := os.Stat(w.root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin root left behind: %v", err)
	}
	if uids, _ := (bpffs.Store{Dir: w.stateDir}).List(); len(uids) != 0 {
		t.Errorf("records left: %v", uids)
	}
	if got := w.delivered(t, deniedPort, 5); got != 5 {
		t.Errorf("%d of 5 datagrams delivered after cleanup: the filter is still attached", got)
	}
}
