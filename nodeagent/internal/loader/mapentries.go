package loader

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Entry is one decoded map entry.
type Entry struct {
	// Map is the map's name in the object.
	Map string
	// Key and Value are raw bytes in the map's layout.
	Key, Value []byte
}

// Encoding says how a map key or value is written.
type Encoding string

// Encodings.
const (
	// EncodingHex is pairs of hex digits (the default).
	EncodingHex Encoding = "Hex"
	// EncodingBase64 is standard base64 with padding.
	EncodingBase64 Encoding = "Base64"
)

// MapEntry is one entry to write into a map of the programs (the
// BpfProgram's mapEntries, as the dataplane hands them over).
type MapEntry struct {
	// Map is the map's name in the bundle.
	Map string
	// Key and Value are the bytes in the map's layout, as Encoding says.
	Key, Value string
	// Encoding of Key and Value; "" is Hex.
	Encoding Encoding
}

// DecodeMapEntries decodes entries and checks each against the key and value
// sizes of its map in spec.
func DecodeMapEntries(spec *ebpf.CollectionSpec, entries []MapEntry) ([]Entry, error) {
	out := make([]Entry, 0, len(entries))
	for i, e := range entries {
		ms, ok := spec.Maps[e.Map]
		if !ok {
			return nil, fmt.Errorf("map entry %d: no map %q: %w", i, e.Map, ErrInvalidMapEntry)
		}
		if perCPU(ms.Type) {
			return nil, fmt.Errorf("map entry %d: per-CPU map %s is not writable from the spec: %w", i, e.Map, ErrInvalidMapEntry)
		}
		if !writable(ms.Type) {
			return nil, fmt.Errorf("map entry %d: map %s of type %s is not writable from the spec (only hash, lru_hash, array and lpm_trie maps hold plain data): %w",
				i, e.Map, ms.Type, ErrInvalidMapEntry)
		}
		key, err := decode(e.Encoding, e.Key)
		if err != nil {
			return nil, fmt.Errorf("map entry %d: decode key of %s: %w", i, e.Map, err)
		}
		val, err := decode(e.Encoding, e.Value)
		if err != nil {
			return nil, fmt.Errorf("map entry %d: decode value of %s: %w", i, e.Map, err)
		}
		if len(key) != int(ms.KeySize) {
			return nil, fmt.Errorf("map entry %d: key of %s is %d bytes, want %d: %w", i, e.Map, len(key), ms.KeySize, ErrInvalidMapEntry)
		}
		if len(val) != int(ms.ValueSize) {
			return nil, fmt.Errorf("map entry %d: value of %s is %d bytes, want %d: %w", i, e.Map, len(val), ms.ValueSize, ErrInvalidMapEntry)
		}
		out = append(out, Entry{Map: e.Map, Key: key, Value: val})
	}
	return out, nil
}

// writable tells whether spec.mapEntries may write into a map of type t:
// only maps whose keys and values are plain bytes. The kernel reads the
// values of program arrays, map-in-maps, sockmaps and sockhashes, reuseport
// arrays, XSK maps, perf event arrays, devmaps, cpumaps and cgroup arrays,
// and the keys of socket, inode, task and cgroup storage, as file
// descriptors of the writing process: the agent's own, holding every
// program, map and link on the node. It is an allow-list, so map types
// added to the kernel later are refused until known to be plain data.
func writable(t ebpf.MapType) bool {
	switch t {
	case ebpf.Hash, ebpf.LRUHash, ebpf.Array, ebpf.LPMTrie:
		return true
	}
	return false
}

func perCPU(t ebpf.MapType) bool {
	switch t {
	case ebpf.PerCPUArray, ebpf.PerCPUHash, ebpf.LRUCPUHash, ebpf.PerCPUCGroupStorage:
		return true
	}
	return false
}

func decode(enc Encoding, s string) ([]byte, error) {
	var b []byte
	var err error
	switch enc {
	case EncodingHex, "":
		b, err = hex.DecodeString(s)
	case EncodingBase64:
		b, err = base64.StdEncoding.DecodeString(s)
	default:
		return nil, fmt.Errorf("unknown encoding %q: %w", enc, ErrInvalidMapEntry)
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalidMapEntry)
	}
	return b, nil
}

// WriteEntries puts entries into maps in their order, then removes the keys
// of stale (entries written before and no longer wanted): it deletes them
// from hash and LPM maps and zeroes them in arrays, whose slots cannot be
// deleted. Missing stale keys are not an error.
//
// The order is part of the map ABI: a writer that keeps derived data beside
// its data (xdpfilter's rule index and its seqlock words) lists the entries
// in the order that keeps readers consistent, and no key it leaves out is
// removed before every listed entry is in place. Only when a hash map is
// full are the stale keys deleted first, to make room.
func WriteEntries(maps map[string]*ebpf.Map, entries, stale []Entry) error {
	want := map[string]bool{}
	for _, e := range entries {
		want[e.Map+"\x00"+string(e.Key)] = true
	}
	var gone []Entry
	for _, e := range stale {
		if !want[e.Map+"\x00"+string(e.Key)] {
			gone = append(gone, e)
		}
	}
	removed := false
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		m, ok := maps[e.Map]
		if !ok {
			return fmt.Errorf("write map %s: %w", e.Map, ErrInvalidMapEntry)
		}
		err := m.Put(e.Key, e.Value)
		if errors.Is(err, unix.E2BIG) && m.Type() != ebpf.Array && !removed && len(gone) > 0 {
			if err := removeStale(maps, gone); err != nil {
				return err
			}
			removed = true
			err = m.Put(e.Key, e.Value)
		}
		if err != nil {
			return fmt.Errorf("write map %s: %w", e.Map, err)
		}
	}
	if removed {
		return nil
	}
	return removeStale(maps, gone)
}

// removeStale deletes keys from hash and LPM maps and zeroes array slots.
func removeStale(maps map[string]*ebpf.Map, gone []Entry) error {
	for _, e := range gone {
		m, ok := maps[e.Map]
		if !ok {
			continue
		}
		if m.Type() == ebpf.Array {
			if err := m.Put(e.Key, make([]byte, m.ValueSize())); err != nil {
				return fmt.Errorf("zero stale slot of array %s: %w", e.Map, err)
			}
			continue
		}
		if err := m.Delete(e.Key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete stale key from map %s: %w", e.Map, err)
		}
	}
	return nil
}

// DecodeMapEntriesLive is DecodeMapEntries against loaded maps (for entries
// written to maps re-adopted from pins, whose spec is not at hand).
func DecodeMapEntriesLive(maps map[string]*ebpf.Map, entries []MapEntry) ([]Entry, error) {
	spec := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}}
	for name, m := range maps {
		spec.Maps[name] = &ebpf.MapSpec{Name: name, Type: m.Type(), KeySize: m.KeySize(), ValueSize: m.ValueSize()}
	}
	return DecodeMapEntries(spec, entries)
}
