// Package loader turns a bundle's ELF object into a CollectionSpec, applies
// spec.constants and spec.mapEntries to it (pure, no kernel), and loads its
// maps and programs into the kernel with CO-RE against the node's BTF.
//
// Programs are loaded one at a time against maps created once, so that one
// program the verifier refuses does not keep its siblings from running.
package loader

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
)

// ParseELF reads an ELF object into a CollectionSpec.
func ParseELF(obj []byte) (*ebpf.CollectionSpec, error) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("parse ELF object: %w", err)
	}
	return spec, nil
}

// Cache shares decoded kernel BTF across loads; nil is valid.
type Cache = btf.Cache

// NewCache returns a BTF cache to share across loads.
func NewCache() *Cache { return btf.NewCache() }

// LoadMaps creates every map of spec (with .rodata holding the constants
// already set on spec) and returns them by name.
func LoadMaps(spec *ebpf.CollectionSpec, cache *Cache) (map[string]*ebpf.Map, error) {
	return LoadMapsReusing(spec, cache, nil)
}

// LoadMapsReusing is LoadMaps where the maps of reuse stand in for the
// spec's maps of the same name (a clone of each is returned; the caller
// keeps its own): check them first with CheckPreserved.
func LoadMapsReusing(spec *ebpf.CollectionSpec, cache *Cache, reuse map[string]*ebpf.Map) (map[string]*ebpf.Map, error) {
	if err := CheckMapSizes(spec); err != nil {
		return nil, err
	}
	only := spec.Copy()
	only.Programs = map[string]*ebpf.ProgramSpec{}
	coll, err := ebpf.NewCollectionWithOptions(only, ebpf.CollectionOptions{Cache: cache, MapReplacements: reuse})
	if err != nil {
		return nil, fmt.Errorf("create maps: %w", err)
	}
	maps := coll.Maps
	coll.Maps = nil
	coll.Close()
	return maps, nil
}

// CheckMapSizes refuses, before any kernel call, an object that declares
// more than format.MaxMaps maps (data sections included), a map that asks
// for more than format.MaxMapBytes, or maps that ask for more than
// format.MaxBundleMapBytes together (format.MapBytes: per-element kernel
// overhead counted, per-CPU maps for every possible CPU): whatever the
// bundle manifest declared, the ELF is what gets loaded. Errors wrap
// bundles.ErrTooLarge.
func CheckMapSizes(spec *ebpf.CollectionSpec) error {
	if len(spec.Maps) > format.MaxMaps {
		return fmt.Errorf("check maps: %w: the object declares %d maps, limit %d", bundles.ErrTooLarge, len(spec.Maps), format.MaxMaps)
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		cpus = 1
	}
	names := make([]string, 0, len(spec.Maps))
	for name := range spec.Maps {
		names = append(names, name)
	}
	sort.Strings(names)
	var total uint64
	for _, name := range names {
		ms := spec.Maps[name]
		n := format.MapBytes(format.MapTypeName(ms.Type), ms.KeySize, ms.ValueSize, ms.MaxEntries, cpus)
		if n > format.MaxMapBytes {
			return fmt.Errorf("check map %s: %w: asks for %d bytes (%s, key %d + value %d × %d entries, kernel overhead included), limit %d",
				name, bundles.ErrTooLarge, n, ms.Type, ms.KeySize, ms.ValueSize, ms.MaxEntries, format.MaxMapBytes)
		}
		total += n
	}
	if total > format.MaxBundleMapBytes {
		return fmt.Errorf("check maps: %w: the object's %d maps ask for %d bytes together, limit %d",
			bundles.ErrTooLarge, len(names), total, format.MaxBundleMapBytes)
	}
	return nil
}

// LoadProgram loads program name of spec, linked against maps (from
// LoadMaps). A verifier rejection wraps *ebpf.VerifierError; VerifierTail
// extracts the end of its log.
func LoadProgram(spec *ebpf.CollectionSpec, name string, maps map[string]*ebpf.Map, cache *Cache) (*ebpf.Program, error) {
	ps, ok := spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("load program %s: %w", name, ErrNoProgram)
	}
	one := spec.Copy()
	one.Programs = map[string]*ebpf.ProgramSpec{name: ps.Copy()}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: maps, Cache: cache})
	if err != nil {
		return nil, fmt.Errorf("load program %s: %w", name, err)
	}
	prog := coll.Programs[name]
	delete(coll.Programs, name)
	coll.Close() // closes only the clones of maps
	return prog, nil
}

// VerifierTail returns the last lines of the verifier log carried by err, at
// most max bytes, and whether err is a verifier rejection at all.
func VerifierTail(err error, max int) (string, bool) {
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		return "", false
	}
	log := ve.Log
	var tail []string
	size := 0
	for i := len(log) - 1; i >= 0; i-- {
		line := strings.TrimSpace(log[i])
		if line == "" {
			continue
		}
		if size+len(line)+1 > max {
			break
		}
		tail = append([]string{line}, tail...)
		size += len(line) + 1
	}
	if len(tail) == 0 {
		s := ve.Error()
		if len(s) > max {
			s = s[len(s)-max:]
		}
		return s, true
	}
	return strings.Join(tail, "\n"), true
}
