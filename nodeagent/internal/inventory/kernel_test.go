package inventory_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// load loads a program returning 0 of type typ, named name, outside bpfleet.
func load(t *testing.T, typ ebpf.ProgramType, name string) *ebpf.Program {
	t.Helper()
	p, err := newProgram(typ, name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// loadB loads a socket filter named name for a benchmark; the caller closes it.
func loadB(b *testing.B, name string) *ebpf.Program {
	b.Helper()
	p, err := newProgram(ebpf.SocketFilter, name)
	if err != nil {
		b.Fatalf("load %s: %v", name, err)
	}
	return p
}

func newProgram(typ ebpf.ProgramType, name string) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         typ,
		License:      "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
	})
}

func programID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel reports no program id")
	}
	return uint32(id)
}

func find(all []inventory.Program, id uint32) (inventory.Program, bool) {
	i := slices.IndexFunc(all, func(p inventory.Program) bool { return p.ID == id })
	if i < 0 {
		return inventory.Program{}, false
	}
	return all[i], true
}

// TestScanKernel loads programs outside bpfleet in the real kernel: one
// attached by a raw tracepoint link, one pinned under a bpfleet-like root as
// a program, one pinned there through its link. Scan lists all three with
// bpftool's fields; the Scanner counts only the first as unmanaged, and stops
// listing it once it is unloaded.
func TestScanKernel(t *testing.T) {
	privileged.RequireBPFFS(t)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	root := "/sys/fs/bpf/bpfleet-inventory-test-" + hex.EncodeToString(suffix)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	uid := "0b6e7f4c-uid"
	for _, dir := range []string{"progs", "links"} {
		if err := os.MkdirAll(filepath.Join(root, uid, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	foreign := load(t, ebpf.RawTracepoint, "inv_foreign")
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exec", Program: foreign})
	if err != nil {
		t.Fatalf("attach raw tracepoint: %v", err)
	}
	defer l.Close()
	pinnedProg := load(t, ebpf.SocketFilter, "inv_ours_prog")
	if err := pinnedProg.Pin(filepath.Join(root, uid, "progs", "inv_ours_prog")); err != nil {
		t.Fatal(err)
	}
	linked := load(t, ebpf.RawTracepoint, "inv_ours_link")
	ourLink, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exit", Program: linked})
	if err != nil {
		t.Fatalf("attach raw tracepoint: %v", err)
	}
	defer ourLink.Close()
	if err := ourLink.Pin(filepath.Join(root, uid, "links", "inv_ours_link@raw_tracepoint")); err != nil {
		t.Fatal(err)
	}
	foreignID, progID, linkedID := programID(t, foreign), programID(t, pinnedProg), programID(t, linked)

	start := time.Now()
	all, err := inventory.Scan()
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	t.Logf("scanned %d programs in %s", len(all), time.Since(start))
	got, ok := find(all, foreignID)
	if !ok {
		t.Fatalf("scan lacks program %d", foreignID)
	}
	if got.Type != "raw_tracepoint" || got.Name != "inv_foreign" || len(got.Tag) != 16 ||
		time.Since(got.LoadedAt) > time.Minute || !slices.Equal(got.AttachPoints, []string{"raw_tracepoint/sched_process_exec"}) {
		t.Errorf("scanned %+v", got)
	}
	if _, ok := find(all, progID); !ok {
		t.Errorf("scan lacks program %d", progID)
	}

	ours, err := inventory.PinnedIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	if !ours[progID] || !ours[linkedID] || ours[foreignID] {
		t.Errorf("pinned ids %v: want %d and %d, not %d", ours, progID, linkedID, foreignID)
	}

	managed := load(t, ebpf.SocketFilter, "inv_managed")
	managedID := programID(t, managed)
	sum, err := (&inventory.Scanner{Root: root}).Unmanaged([]v1alpha1.ProgramState{{ID: managedID}})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[uint32]v1alpha1.UnmanagedProgram{}
	for _, p := range sum.Programs {
		listed[p.ID] = p
	}
	if _, ok := listed[foreignID]; !ok && int(sum.Count) <= inventory.MaxListed {
		t.Errorf("unmanaged summary lacks %d: %+v", foreignID, sum)
	}
	for _, id := range []uint32{progID, linkedID, managedID} {
		if _, ok := listed[id]; ok {
			t.Errorf("bpfleet's program %d is listed as unmanaged", id)
		}
	}
	if sum.ByType["raw_tracepoint"] < 1 || len(sum.Programs) > inventory.MaxListed {
		t.Errorf("summary %+v", sum)
	}

	l.Close()
	foreign.Close()
	// The kernel frees a closed program after an RCU grace period.
	deadline := time.Now().Add(5 * time.Second)
	for {
		sum, err = (&inventory.Scanner{Root: root}).Unmanaged(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(sum.Programs, func(p v1alpha1.UnmanagedProgram) bool { return p.ID == foreignID }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %d is still listed 5s after it was unloaded", foreignID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPinnedIDsMissingRoot(t *testing.T) {
	ids, err := inventory.PinnedIDs(filepath.Join(t.TempDir(), "none"))
	if err != nil || len(ids) != 0 {
		t.Fatalf("PinnedIDs of a missing root = %v, %v; want none", ids, err)
	}
}

// TestScannerRemembersOurs: a program bpfleet reported once and then
// dropped (replaced by an upgrade, removed) but still in the kernel — as
// while its link is freed — is not unmanaged; once it leaves the kernel it
// is forgotten.
func TestScannerRemembersOurs(t *testing.T) {
	privileged.RequireBPFFS(t)
	s := &inventory.Scanner{Root: filepath.Join(t.TempDir(), "no-pins")}
	old := load(t, ebpf.SocketFilter, "inv_replaced")
	oldID := programID(t, old)
	steps := []struct {
		name    string
		managed []v1alpha1.ProgramState
		unload  bool
		// wantListed tells whether oldID may be reported as unmanaged.
		wantListed bool
	}{
		{name: "reported by the dataplane", managed: []v1alpha1.ProgramState{{ID: oldID}}},
		{name: "replaced, still in the kernel"},
		{name: "still lingering a scan later"},
		{name: "unloaded", unload: true},
	}
	for _, st := range steps {
		if st.unload {
			old.Close()
		}
		sum, err := s.Unmanaged(st.managed)
		if err != nil {
			t.Fatal(err)
		}
		if _, listed := findUnmanaged(sum, oldID); listed != st.wantListed {
			t.Errorf("%s: program %d listed %t, want %t", st.name, oldID, listed, st.wantListed)
		}
	}
}

func findUnmanaged(sum *v1alpha1.UnmanagedSummary, id uint32) (v1alpha1.UnmanagedProgram, bool) {
	i := slices.IndexFunc(sum.Programs, func(p v1alpha1.UnmanagedProgram) bool { return p.ID == id })
	if i < 0 {
		return v1alpha1.UnmanagedProgram{}, false
	}
	return sum.Programs[i], true
}

// TestOwners: a program this process holds names this process; one held
// only by its pin names nobody; an id not asked for is not looked up.
func TestOwners(t *testing.T) {
	privileged.RequireBPFFS(t)
	held := load(t, ebpf.SocketFilter, "owned_prog")
	pinnedOnly := load(t, ebpf.SocketFilter, "pinned_prog")
	dir := filepath.Join("/sys/fs/bpf", "bpfleet-test-owners-"+randSuffix(t))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := pinnedOnly.Pin(filepath.Join(dir, "p")); err != nil {
		t.Fatal(err)
	}
	heldID, pinnedID := programID(t, held), programID(t, pinnedOnly)
	pinnedOnly.Close() // only the pin holds it now

	got := inventory.Owners("/proc", map[uint32]bool{heldID: true, pinnedID: true})
	me := fmt.Sprintf("(%d)", os.Getpid())
	if len(got[heldID]) != 1 || !strings.HasSuffix(got[heldID][0], me) {
		t.Errorf("owners of a program this process holds = %q, want one ending in %s", got[heldID], me)
	}
	if len(got[pinnedID]) != 0 {
		t.Errorf("owners of a program held by its pin alone = %q, want none", got[pinnedID])
	}
	if other := inventory.Owners("/proc", map[uint32]bool{pinnedID: true}); len(other[heldID]) != 0 {
		t.Errorf("looked up a program not asked for: %q", other[heldID])
	}
}

func randSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
