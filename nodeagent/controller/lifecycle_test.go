package controller_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestAgentEndToEnd drives one agent on the real kernel through a program's
// life: attach and filter, map update in place, idle, restart, registry
// outage during an upgrade, deselection and deletion.
func TestAgentEndToEnd(t *testing.T) {
	w := newWorld(t)
	bpftool := privileged.RequireCommand(t, "bpftool")
	ctx := context.Background()

	ref, v1 := w.push(t, "v1", "0.1.0", true)
	a := w.startAgent(t)
	outer := t
	eventually(t, 10*time.Second, "agent reports the node", func() (bool, string) { return w.state(t) != nil, "no BpfNodeState" })
	p := w.createProgram(t, ref, v1, denyEntry(deniedPort))
	start := time.Now() // the operator's status write: the node learns its digest

	var first v1alpha1.ProgramState
	t.Run("attached and filtering", func(t *testing.T) {
		first = w.waitEntry(t, p, "program attached", attachedAt(v1))
		t.Logf("digest rolled out → Attached in BpfNodeState (observed by polling every 100ms): %s", time.Since(start))
		if want := "xdp/" + w.veth.A; first.AttachPoint == "" || first.Signer == "" || first.VerifiedAt == nil {
			t.Errorf("entry lacks attach point (want like %q), signer or verifiedAt: %+v", want, first)
		}
		if got := w.delivered(t, deniedPort, 20); got != 0 {
			t.Errorf("%d of 20 datagrams to the denied port arrived", got)
		}
		if got := w.delivered(t, openPort, 20); got == 0 {
			t.Errorf("no datagram to an open port arrived")
		}
		if drops := readCounter(t, w, p.UID, 1); drops < 20 {
			t.Errorf("counters[1] = %d drops, want >= 20", drops)
		}

		bt := bpftoolShow(t, bpftool, first.ID)
		if bt.ID != first.ID || bt.Tag != first.Tag || bt.Type != first.Type || bt.Name != first.Name ||
			bt.BytesXlated != first.BytesXlated || bt.BytesJited != first.BytesJited ||
			bt.BytesMemlock != first.BytesMemlock || bt.BTFID != first.BTFID ||
			fmt.Sprint(bt.MapIDs) != fmt.Sprint(first.MapIDs) {
			t.Errorf("status differs from bpftool:\nstatus  %+v\nbpftool %+v", first, bt)
		}
		if first.LoadedAt == nil || abs(first.LoadedAt.Unix()-bt.LoadedAt) > 1 {
			t.Errorf("loadedAt %v, bpftool %d", first.LoadedAt, bt.LoadedAt)
		}

		checkMetrics(t, w.node, first.ID)

		ns := w.state(t)
		if len(ns.OwnerReferences) != 1 || ns.OwnerReferences[0].Kind != "Node" || ns.OwnerReferences[0].Name != w.node {
			t.Errorf("owner references = %+v, want the Node", ns.OwnerReferences)
		}
		k := ns.Status.Kernel
		if k.Release == "" || k.Architecture == "" || k.BootID == "" || !k.BTF || len(ns.Status.Features) == 0 {
			t.Errorf("kernel/features incomplete: %+v, %d features", k, len(ns.Status.Features))
		}
		if ns.Status.Summary != (v1alpha1.NodeSummary{Programs: 1, Attached: 1}) || ns.Status.AgentVersion != "test" {
			t.Errorf("summary %+v, version %q", ns.Status.Summary, ns.Status.AgentVersion)
		}
		if c := meta.FindStatusCondition(ns.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("Ready = %+v, want True", c)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("map entries change in place", func(t *testing.T) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		p.Spec.MapEntries = []v1alpha1.MapEntry{denyEntry(otherPort)}
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		setRollout(t, p, v1, v1, "")
		w.waitEntry(t, p, "new generation attached", func(s v1alpha1.ProgramState) bool {
			return attachedAt(v1)(s) && s.Generation == p.Generation
		})
		eventually(t, 10*time.Second, "rule moved", func() (bool, string) {
			return w.delivered(t, otherPort, 5) == 0 && w.delivered(t, deniedPort, 5) > 0, "old port still denied or new one open"
		})
		if got := w.state(t).Status.Programs[0].ID; got != first.ID {
			t.Errorf("program id %d after a map change, want %d (no reload)", got, first.ID)
		}
	})

	t.Run("idle writes nothing", func(t *testing.T) {
		time.Sleep(time.Second) // let the last change settle
		before := w.state(t).ResourceVersion
		time.Sleep(2 * time.Second) // about 6 resyncs
		if after := w.state(t).ResourceVersion; after != before {
			t.Errorf("BpfNodeState resourceVersion moved from %s to %s while idle", before, after)
		}
	})

	t.Run("restart re-adopts", func(t *testing.T) {
		a.stop()
		if got := w.delivered(t, otherPort, 5); got != 0 {
			t.Errorf("filter stopped with the agent: %d datagrams arrived", got)
		}
		a = w.startAgent(outer) // runs until the whole test ends
		time.Sleep(2 * time.Second)
		got := w.waitEntry(t, p, "attached after restart", attachedAt(v1))
		if got.ID != first.ID {
			t.Errorf("program id %d after restart, want %d (re-adopted, not reloaded)", got.ID, first.ID)
		}
	})

	var v2 string
	t.Run("registry down during upgrade keeps the old program", func(t *testing.T) {
		_, v2 = w.push(t, "v2", "0.2.0", true)
		w.reg.Stop()
		setRollout(t, p, v1, v2, "")
		held := w.waitEntry(t, p, "held with PullFailed", func(s v1alpha1.ProgramState) bool {
			return s.Reason == v1alpha1.ReasonPullFailed
		})
		if held.State != v1alpha1.PhaseAttached || held.ID != first.ID || held.Message == "" {
			t.Errorf("held entry %+v, want Attached, id %d, a message", held, first.ID)
		}
		if got := w.delivered(t, otherPort, 5); got != 0 {
			t.Errorf("old filter not running during the outage: %d datagrams arrived", got)
		}
		c := meta.FindStatusCondition(w.state(t).Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonPullFailed {
			t.Errorf("Ready = %+v, want False/PullFailed", c)
		}
		// The operator halts the rollout: the node returns to the stable
		// digest from its cache, without the registry.
		setRollout(t, p, v1, v2, v1alpha1.ReasonRolloutHalted)
		w.waitEntry(t, p, "back at v1", attachedAt(v1))
	})

	t.Run("deselected node detaches everything", func(t *testing.T) {
		node := &corev1.Node{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: w.node}, node); err != nil {
			t.Fatal(err)
		}
		delete(node.Labels, nodeLabel)
		if err := env.Client.Update(ctx, node); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "pins removed", func() (bool, string) {
			left := w.bpffsLeft(t)
			return len(left) == 0 && len(entriesOf(w.state(t), p.UID)) == 0, fmt.Sprint(left)
		})
		if got := w.delivered(t, otherPort, 5); got == 0 {
			t.Errorf("filter still drops after deselection")
		}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: w.node}, node); err != nil {
			t.Fatal(err)
		}
		node.Labels = map[string]string{nodeLabel: w.node}
		if err := env.Client.Update(ctx, node); err != nil {
			t.Fatal(err)
		}
		w.waitEntry(t, p, "attached again from the cache", attachedAt(v1))
	})

	t.Run("restart during the outage keeps following the spec", func(t *testing.T) {
		before := w.waitEntry(t, p, "attached", attachedAt(v1))
		a.stop()
		a = w.startAgent(outer)
		// The new agent cannot verify v1 again, but v1 runs: it stays
		// Attached without a hold, and map entries still apply.
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		p.Spec.MapEntries = []v1alpha1.MapEntry{denyEntry(deniedPort)}
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		e := w.waitEntry(t, p, "new generation applied from the cache", func(s v1alpha1.ProgramState) bool {
			return attachedAt(v1)(s) && s.Generation == p.Generation
		})
		if e.ID != before.ID || e.VerifiedAt == nil || !e.VerifiedAt.Equal(before.VerifiedAt) || e.Signer != before.Signer {
			t.Errorf("entry %+v: want id %d, signer and first verification time kept from %+v", e, before.ID, before)
		}
		eventually(t, 10*time.Second, "rule moved back", func() (bool, string) {
			return w.delivered(t, deniedPort, 5) == 0 && w.delivered(t, otherPort, 5) > 0, "rule not moved"
		})
	})

	t.Run("deleted BpfProgram detaches everything", func(t *testing.T) {
		if err := env.Client.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "pins removed", func() (bool, string) {
			left := w.bpffsLeft(t)
			return len(left) == 0 && len(entriesOf(w.state(t), p.UID)) == 0, fmt.Sprint(left)
		})
		if ns := w.state(t); ns.Status.Summary.Programs != 0 {
			t.Errorf("summary %+v after deletion", ns.Status.Summary)
		}
	})
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestLockRefusesSecondAgent: one state directory, one agent.
func TestLockRefusesSecondAgent(t *testing.T) {
	dir := t.TempDir()
	unlock, err := controller.Lock(dir)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	_, err = controller.Lock(dir)
	if !errors.Is(err, controller.ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	err = controller.Run(context.Background(), env.Config, controller.Options{NodeName: "n", StateDir: dir, BPFFSRoot: filepath.Join(dir, "nobpffs")})
	if !errors.Is(err, controller.ErrLocked) {
		t.Fatalf("Run with a locked state dir: %v, want ErrLocked", err)
	}
	unlock()
	unlock2, err := controller.Lock(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// TestTwoAgentsInOneProcess: agents for different nodes, each with its own
// netns, bpffs root and state dir, run side by side in one process (as
// bpfleet local and the e2e suite run them) and each reports only its own.
func TestTwoAgentsInOneProcess(t *testing.T) {
	worlds := []*world{newWorld(t), newWorld(t)}
	var progs []*v1alpha1.BpfProgram
	for _, w := range worlds {
		ref, digest := w.push(t, "v1", "0.1.0", true)
		progs = append(progs, w.createProgram(t, ref, digest, denyEntry(deniedPort)))
		w.startAgent(t)
	}
	for i, w := range worlds {
		e := w.waitEntry(t, progs[i], "attached on "+w.node, func(s v1alpha1.ProgramState) bool { return s.State == v1alpha1.PhaseAttached })
		if n := len(w.state(t).Status.Programs); n != 1 {
			t.Errorf("%s reports %d entries, want only its own program", w.node, n)
		}
		if got := w.delivered(t, deniedPort, 5); got != 0 {
			t.Errorf("%s: %d datagrams to the denied port arrived", w.node, got)
		}
		checkMetricsOf(t, w.node, e.ID, "counters", "1", 5)
	}
}

// TestRebootWithNewKernel simulates a reboot into a new kernel: the agent
// stops, the pins go (a reboot empties bpffs), the node cache is lost too,
// and the agent starts with a new boot id and kernel release. It pulls the
// bundle again, verifies it, loads and attaches it anew, and the node's
// BpfNodeState records the new kernel.
func TestRebootWithNewKernel(t *testing.T) {
	w := newWorld(t)
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	bootA, bootB := "boot-a-"+randHex(4), "boot-b-"+randHex(4)
	a := w.startAgent(t, func(o *controller.Options) { o.BootID = bootA })
	before := w.waitEntry(t, p, "attached before the reboot", attachedAt(digest))
	release := w.state(t).Status.Kernel.Release
	if k := w.state(t).Status.Kernel; k.BootID != bootA {
		t.Fatalf("kernel %+v, want boot id %s", k, bootA)
	}
	a.stop()
	if err := os.RemoveAll(w.root); err != nil { // detaches: only the pins held the links
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(w.stateDir, "bundles")); err != nil {
		t.Fatal(err)
	}
	if got := w.delivered(t, deniedPort, 5); got != 5 {
		t.Fatalf("%d of 5 datagrams to the denied port arrived with the pins gone: the filter still runs", got)
	}
	b, err := remote.New(remote.Options{PlainHTTP: true}).Fetch(context.Background(), w.repo, digest)
	if err != nil {
		t.Fatal(err)
	}
	layer := b.Manifest.Objects[0].Digest
	pulls := w.reg.BlobGets(layer)

	upgraded := release + "-upgraded"
	start := time.Now()
	w.startAgent(t, func(o *controller.Options) { o.BootID, o.KernelRelease = bootB, upgraded })
	after := w.waitEntry(t, p, "attached again after the reboot", func(s v1alpha1.ProgramState) bool {
		return attachedAt(digest)(s) && s.ID != before.ID
	})
	t.Logf("reboot into %s → reloaded from a fresh pull and reported in %s", upgraded, time.Since(start))
	if k := w.state(t).Status.Kernel; k.BootID != bootB || k.Release != upgraded {
		t.Errorf("kernel %+v, want boot id %s and release %s", k, bootB, upgraded)
	}
	if w.reg.BlobGets(layer) <= pulls {
		t.Errorf("the bundle was not pulled again with the node cache gone")
	}
	if after.LinkID == before.LinkID && after.LinkID != 0 {
		t.Errorf("link %d survived a reboot", after.LinkID)
	}
	if got := w.delivered(t, deniedPort, 20); got != 0 {
		t.Errorf("%d of 20 datagrams to the denied port arrived after the reload", got)
	}
}
