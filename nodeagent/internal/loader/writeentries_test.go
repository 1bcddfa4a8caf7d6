package loader_test

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func newMap(t *testing.T, typ ebpf.MapType, max uint32) *ebpf.Map {
	t.Helper()
	privileged.RequireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: typ, KeySize: 4, ValueSize: 4, MaxEntries: max})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func entry(m string, k, v byte) loader.Entry {
	return loader.Entry{Map: m, Key: []byte{k, 0, 0, 0}, Value: []byte{v, 0, 0, 0}}
}

func lookup(t *testing.T, m *ebpf.Map, k byte) (uint32, bool) {
	t.Helper()
	var v uint32
	err := m.Lookup([]byte{k, 0, 0, 0}, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// TestWriteEntriesStaleKeys: keys no longer wanted leave hash maps and are
// zeroed in arrays (whose slots cannot be deleted); wanted keys stay.
func TestWriteEntriesStaleKeys(t *testing.T) {
	h, a := newMap(t, ebpf.Hash, 8), newMap(t, ebpf.Array, 8)
	maps := map[string]*ebpf.Map{"h": h, "a": a}
	old := []loader.Entry{entry("h", 1, 1), entry("h", 2, 2), entry("a", 1, 1), entry("a", 2, 2)}
	if err := loader.WriteEntries(maps, old, nil); err != nil {
		t.Fatal(err)
	}
	next := []loader.Entry{entry("h", 2, 20), entry("a", 2, 20)}
	if err := loader.WriteEntries(maps, next, old); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(t, h, 1); ok {
		t.Error("stale hash key 1 still there")
	}
	if v, _ := lookup(t, h, 2); v != 20 {
		t.Errorf("hash key 2 = %d, want 20", v)
	}
	if v, ok := lookup(t, a, 1); !ok || v != 0 {
		t.Errorf("stale array slot 1 = %d (present %t), want zeroed", v, ok)
	}
	if v, _ := lookup(t, a, 2); v != 20 {
		t.Errorf("array slot 2 = %d, want 20", v)
	}
}

// TestWriteEntriesRemovesAfterWriting: stale keys are removed only after
// every wanted entry is written, so a writer that keeps derived data in
// step (xdpfilter's index) never has a reader meet a removed key before its
// replacement. A write that fails leaves the stale keys in place.
func TestWriteEntriesRemovesAfterWriting(t *testing.T) {
	h, a := newMap(t, ebpf.Hash, 8), newMap(t, ebpf.Array, 4)
	maps := map[string]*ebpf.Map{"h": h, "a": a}
	old := []loader.Entry{entry("h", 1, 1)}
	if err := loader.WriteEntries(maps, old, nil); err != nil {
		t.Fatal(err)
	}
	next := []loader.Entry{entry("h", 2, 2), entry("a", 9, 9)} // slot 9 of 4: refused
	if err := loader.WriteEntries(maps, next, old); err == nil {
		t.Fatal("a write past the array succeeded")
	}
	if _, ok := lookup(t, h, 1); !ok {
		t.Fatal("the stale key was removed before the wanted entries were written")
	}
	if v, _ := lookup(t, h, 2); v != 2 {
		t.Fatalf("the entry before the refused one = %d, want written", v)
	}
}

// TestWriteEntriesFullHash: a full hash map whose keys are all replaced
// makes room by removing the stale keys first.
func TestWriteEntriesFullHash(t *testing.T) {
	h := newMap(t, ebpf.Hash, 2)
	maps := map[string]*ebpf.Map{"h": h}
	old := []loader.Entry{entry("h", 1, 1), entry("h", 2, 2)}
	if err := loader.WriteEntries(maps, old, nil); err != nil {
		t.Fatal(err)
	}
	next := []loader.Entry{entry("h", 3, 3), entry("h", 4, 4)}
	if err := loader.WriteEntries(maps, next, old); err != nil {
		t.Fatalf("replace every key of a full hash: %v", err)
	}
	for k, want := range map[byte]bool{1: false, 2: false, 3: true, 4: true} {
		if _, ok := lookup(t, h, k); ok != want {
			t.Errorf("key %d present %t, want %t", k, ok, want)
		}
	}
}
