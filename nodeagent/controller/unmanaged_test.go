package controller_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
)

// foreignProgram is a program loaded outside bpfleet, as a third-party
// loader would: attached by a raw tracepoint link pinned in a test-only
// bpffs directory.
type foreignProgram struct {
	id   uint32
	prog *ebpf.Program
	link link.Link
	dir  string
}

func loadForeign(t *testing.T) *foreignProgram {
	t.Helper()
	f := &foreignProgram{dir: "/sys/fs/bpf/bpfleet-test-foreign-" + randHex(6)}
	var err error
	f.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "foreign_rawtp",
		Type:         ebpf.RawTracepoint,
		License:      "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load a foreign program: %v", err)
	}
	f.link, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exec", Program: f.prog})
	if err != nil {
		f.prog.Close()
		t.Fatalf("attach the foreign program: %v", err)
	}
	if err := os.Mkdir(f.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := f.link.Pin(f.dir + "/link"); err != nil {
		t.Fatal(err)
	}
	info, err := f.prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	f.id = uint32(id)
	t.Cleanup(f.remove)
	return f
}

// remove unpins and closes everything; the kernel unloads the program.
func (f *foreignProgram) remove() {
	if f.link != nil {
		_ = f.link.Unpin()
		f.link.Close()
		f.prog.Close()
		f.link = nil
	}
	_ = os.RemoveAll(f.dir)
}

func listed(u *v1alpha1.UnmanagedSummary, id uint32) (v1alpha1.UnmanagedProgram, bool) {
	if u == nil {
		return v1alpha1.UnmanagedProgram{}, false
	}
	i := slices.IndexFunc(u.Programs, func(p v1alpha1.UnmanagedProgram) bool { return p.ID == id })
	if i < 0 {
		return v1alpha1.UnmanagedProgram{}, false
	}
	return u.Programs[i], true
}

// ownListed returns the ids of the node's own programs its unmanaged list names.
func ownListed(ns *v1alpha1.BpfNodeState) []uint32 {
	var out []uint32
	for _, p := range ns.Status.Programs {
		if _, ok := listed(ns.Status.Unmanaged, p.ID); ok && p.ID != 0 {
			out = append(out, p.ID)
		}
	}
	return out
}

// kernelIDs are the ids of every program in the kernel but the node's own.
func kernelIDs(t *testing.T, own []v1alpha1.ProgramState) map[uint32]bool {
	t.Helper()
	all, err := inventory.Scan()
	if err != nil {
		t.Fatalf("scan the kernel: %v", err)
	}
	ids := map[uint32]bool{}
	for _, p := range all {
		ids[p.ID] = true
	}
	for _, p := range own {
		delete(ids, p.ID)
	}
	return ids
}

// TestUnmanagedPrograms runs an agent next to a program loaded outside
// bpfleet: the program is reported (status, metric, Event) within one resync
// after the rate limit, and dropped after it is removed; the agent's own
// program never is; and a node whose kernel does not change writes nothing,
// while one whose kernel churns writes at most once per interval.
func TestUnmanagedPrograms(t *testing.T) {
	w := newWorld(t)
	const (
		resync   = 300 * time.Millisecond
		interval = time.Second
	)
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t, func(o *controller.Options) {
		o.ResyncInterval = resync
		o.UnmanagedInterval = interval
	})
	own := w.waitEntry(t, p, "attached", attachedAt(digest))

	// Watch every write of the node's status for the whole test.
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watcher, err := wc.Watch(ctx, &v1alpha1.BpfNodeStateList{}, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", w.node)})
	if err != nil {
		t.Fatalf("watch the node state: %v", err)
	}
	defer watcher.Stop()
	writes := make(chan *v1alpha1.BpfNodeState, 1000)
	go func() {
		defer close(writes)
		for ev := range watcher.ResultChan() {
			if ns, ok := ev.Object.(*v1alpha1.BpfNodeState); ok && ev.Type == watch.Modified {
				writes <- ns
			}
		}
	}()
	// drain returns the writes seen so far, checking each: no program the
	// agent ever reported as its own is listed as unmanaged.
	ownEver := map[uint32]bool{own.ID: true}
	drain := func() []*v1alpha1.BpfNodeState {
		var out []*v1alpha1.BpfNodeState
		for {
			select {
			case ns := <-writes:
				for _, p := range ns.Status.Programs {
					if p.ID != 0 {
						ownEver[p.ID] = true
					}
				}
				for id := range ownEver {
					if _, ok := listed(ns.Status.Unmanaged, id); ok {
						t.Errorf("bpfleet's own program %d is listed as unmanaged (resourceVersion %s)", id, ns.ResourceVersion)
					}
				}
				out = append(out, ns)
			default:
				return out
			}
		}
	}

	ns := w.state(t)
	if ns.Status.Unmanaged == nil {
		t.Fatalf("status.unmanaged is missing: %+v", ns.Status)
	}
	if ids := ownListed(ns); len(ids) > 0 {
		t.Errorf("bpfleet's own programs %v are listed as unmanaged", ids)
	}

	f := loadForeign(t)
	loaded := time.Now()
	var got v1alpha1.UnmanagedProgram
	eventually(t, interval+10*resync+5*time.Second, "the foreign program is reported", func() (bool, string) {
		var ok bool
		ns = w.state(t)
		got, ok = listed(ns.Status.Unmanaged, f.id)
		return ok, fmt.Sprintf("%+v", ns.Status.Unmanaged)
	})
	t.Logf("foreign program %d loaded → in status.unmanaged: %s (rate limit %s, resync %s); %d unmanaged on the node: %v",
		f.id, time.Since(loaded), interval, resync, ns.Status.Unmanaged.Count, ns.Status.Unmanaged.ByType)
	if got.Type != "raw_tracepoint" || got.Name != "foreign_rawtp" || len(got.Tag) != 16 || got.LoadedAt == nil ||
		got.AttachPoint != "raw_tracepoint/sched_process_exec" {
		t.Errorf("reported %+v", got)
	}
	// The loader (this test process) holds the program and its link.
	if me := fmt.Sprintf("(%d)", os.Getpid()); !strings.Contains(got.Owners, me) {
		t.Errorf("owners %q do not name the loading process %s", got.Owners, me)
	}
	if ns.Status.Unmanaged.ByType["raw_tracepoint"] < 1 || ns.Status.Unmanaged.Count < int32(len(ns.Status.Unmanaged.Programs)) {
		t.Errorf("summary %+v", ns.Status.Unmanaged)
	}
	if v := unmanagedGauge(t, w.node, "raw_tracepoint"); v < 1 {
		t.Errorf("bpfleet_unmanaged_programs{type=raw_tracepoint} = %v, want >= 1", v)
	}
	eventually(t, 10*time.Second, "an UnmanagedProgramsChanged event names the program", func() (bool, string) {
		var evs eventsv1.EventList
		if err := env.Client.List(context.Background(), &evs); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == w.node && e.Reason == controller.ReasonUnmanagedChanged && e.Type == corev1.EventTypeNormal &&
				strings.Contains(e.Note, fmt.Sprintf("%d raw_tracepoint foreign_rawtp", f.id)) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items))
	})

	t.Run("idle node writes nothing", func(t *testing.T) {
		// Other tests and processes share this kernel: a window counts as
		// idle only when no program came or went during it. Every write
		// must carry a changed inventory, and no more than one per
		// interval (plus the one a change just before the window may
		// have made due).
		const window = 3 * time.Second
		quiet := 0
		for attempt := 0; attempt < 6 && quiet == 0; attempt++ {
			time.Sleep(interval + resync) // let a held-back change through
			drain()
			prev := w.state(t)
			before := kernelIDs(t, prev.Status.Programs)
			time.Sleep(window)
			after := kernelIDs(t, prev.Status.Programs)
			seen := drain()
			transient := false
			for _, ns := range seen {
				if !equality.Semantic.DeepEqual(ns.Status.Programs, prev.Status.Programs) || ns.Status.Summary != prev.Status.Summary {
					t.Errorf("programs changed while idle: %+v → %+v", prev.Status.Programs, ns.Status.Programs)
				}
				if inventory.Same(prev.Status.Unmanaged, ns.Status.Unmanaged) {
					t.Errorf("status written (resourceVersion %s → %s) with the same inventory", prev.ResourceVersion, ns.ResourceVersion)
				}
				if ns.Status.Unmanaged != nil {
					for _, u := range ns.Status.Unmanaged.Programs {
						if !before[u.ID] && !after[u.ID] {
							transient = true // came and went within the window
						}
					}
				}
				prev = ns
			}
			if max := int(window/interval) + 1; len(seen) > max {
				t.Errorf("%d inventory writes in %s, want at most %d (one per %s)", len(seen), window, max, interval)
			}
			if fmt.Sprint(sortedIDs(before)) == fmt.Sprint(sortedIDs(after)) && !transient {
				quiet++
				if len(seen) != 0 {
					t.Errorf("kernel unchanged for %s, yet %d status writes", window, len(seen))
				}
				t.Logf("kernel unchanged for %s (%d resyncs, %d programs not bpfleet's): %d status writes", window, window/resync, len(after), len(seen))
			} else {
				t.Logf("kernel changed during window %d (%d → %d programs not bpfleet's): %d status writes, each a changed inventory", attempt, len(before), len(after), len(seen))
			}
		}
		if quiet == 0 {
			t.Logf("the kernel never stayed unchanged for %s: only the rate limit was checked", window)
		}
	})

	t.Run("an upgrade lists neither the old nor the new program", func(t *testing.T) {
		_, v2 := w.push(t, "v2", "0.2.0", true)
		setRollout(t, p, digest, v2, "")
		upgraded := w.waitEntry(t, p, "upgraded", attachedAt(v2))
		if upgraded.ID == own.ID {
			t.Fatalf("program id %d unchanged by the upgrade", own.ID)
		}
		time.Sleep(interval + 3*resync) // an inventory write may follow
		drain()
		if len(ownEver) < 2 {
			t.Errorf("saw own programs %v, want the old and the new", ownEver)
		}
	})

	t.Run("removed program disappears", func(t *testing.T) {
		f.remove()
		removed := time.Now()
		eventually(t, interval+10*resync+5*time.Second, "the foreign program is dropped", func() (bool, string) {
			ns = w.state(t)
			_, ok := listed(ns.Status.Unmanaged, f.id)
			return !ok, fmt.Sprintf("%+v", ns.Status.Unmanaged)
		})
		t.Logf("foreign program removed → gone from status.unmanaged: %s", time.Since(removed))
		if ids := ownListed(ns); len(ids) > 0 {
			t.Errorf("bpfleet's own programs %v are listed as unmanaged", ids)
		}
	})
	drain()
}

func sortedIDs(ids map[uint32]bool) []uint32 {
	out := make([]uint32, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// unmanagedGauge is bpfleet_unmanaged_programs{node, type} as the agent
// exports it on controller-runtime's registry; 0 when absent.
func unmanagedGauge(t *testing.T, node, typ string) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "bpfleet_unmanaged_programs" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["node"] == node && labels["type"] == typ {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
