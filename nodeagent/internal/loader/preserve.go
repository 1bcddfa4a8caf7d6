package loader

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
)

// MapShape is what the kernel fixes when it creates a map and never changes
// afterwards: a map re-used by a new version must have the shape the new
// version declares.
type MapShape struct {
	Type       ebpf.MapType
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
}

// ShapeOfSpec is the shape a map spec asks for.
func ShapeOfSpec(ms *ebpf.MapSpec) MapShape {
	return MapShape{Type: ms.Type, KeySize: ms.KeySize, ValueSize: ms.ValueSize, MaxEntries: ms.MaxEntries, Flags: ms.Flags}
}

// ShapeOfMap is the shape of a loaded map.
func ShapeOfMap(m *ebpf.Map) MapShape {
	return MapShape{Type: m.Type(), KeySize: m.KeySize(), ValueSize: m.ValueSize(), MaxEntries: m.MaxEntries(), Flags: m.Flags()}
}

// CheckPreserved tells whether a running map of shape running can stand in
// for the map name that a new version declares with shape want. Every field
// must be equal:
//   - type, key size and value size: the new programs would read the old
//     bytes with another layout;
//   - max entries: the kernel cannot resize a map, so a larger declaration
//     would silently get the old capacity (an array indexed past it, a hash
//     full early) and a smaller one more than it asked for;
//   - flags: they change semantics (BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG,
//     BPF_F_MMAPABLE, the LRU's BPF_F_NO_COMMON_LRU).
//
// Sizes are compared, not meaning: a value struct whose fields moved but
// kept its size carries over; rename the map when its layout changes.
// The error wraps ErrMapIncompatible and names the map and each difference.
func CheckPreserved(name string, running, want MapShape) error {
	var diffs []string
	if running.Type != want.Type {
		diffs = append(diffs, fmt.Sprintf("type %s, new version %s", running.Type, want.Type))
	}
	for _, f := range []struct {
		what      string
		old, new_ uint32
	}{
		{"key size", running.KeySize, want.KeySize},
		{"value size", running.ValueSize, want.ValueSize},
		{"max entries", running.MaxEntries, want.MaxEntries},
	} {
		if f.old != f.new_ {
			diffs = append(diffs, fmt.Sprintf("%s %d, new version %d", f.what, f.old, f.new_))
		}
	}
	if running.Flags != want.Flags {
		diffs = append(diffs, fmt.Sprintf("flags %#x, new version %#x", running.Flags, want.Flags))
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("preserved map %s: running map has %s: %w", name, strings.Join(diffs, "; "), ErrMapIncompatible)
}
