// Package kernelprog holds eBPF test programs for the node agent's kernel
// tests: one per hook kind, a UDP port filter with constants and maps, and a
// program the verifier rejects, plus in-memory bundles of them. The objects
// are built from src/progs.c by go generate and committed, so tests need no
// clang.
package kernelprog

import (
	_ "embed"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bundles/format"
)

//go:generate clang -O2 -g -Wall -Werror -target bpfel -fdebug-compilation-dir=. -I/usr/include/x86_64-linux-gnu -c src/progs.c -o progs_bpfel.o
//go:generate clang -O2 -g -Wall -Werror -target bpfel -fdebug-compilation-dir=. -I/usr/include/x86_64-linux-gnu -DV2 -c src/progs.c -o progs_v2_bpfel.o
//go:generate clang -O2 -g -Wall -Werror -target bpfel -fdebug-compilation-dir=. -I/usr/include/x86_64-linux-gnu -DBROKEN -c src/progs.c -o progs_broken_bpfel.o
//go:generate clang -O2 -g -Wall -Werror -target bpfel -fdebug-compilation-dir=. -I/usr/include/x86_64-linux-gnu -DWIDE -c src/progs.c -o progs_wide_bpfel.o

// Object is the little-endian ELF object with every test program.
//
//go:embed progs_bpfel.o
var Object []byte

// ObjectV2 is Object with a different xdp_filter (another tag): an upgrade.
//
//go:embed progs_v2_bpfel.o
var ObjectV2 []byte

// ObjectBroken is Object with an xdp_filter the verifier refuses: a bad release.
//
//go:embed progs_broken_bpfel.o
var ObjectBroken []byte

// ObjectWide is Object whose counters map has 16-byte values: an upgrade
// whose preserved counters cannot re-use the running map.
//
//go:embed progs_wide_bpfel.o
var ObjectWide []byte

// Program names in Object.
const (
	XDPFilter   = "xdp_filter"      // UDP destination-port filter (maps counters, deny)
	XDPPass     = "xdp_pass"        // counts and passes
	TCCount     = "tc_count"        // tcx, counts
	Tracepoint  = "tp_getppid"      // tracepoint syscalls/sys_enter_getppid
	RawTP       = "rawtp_sys_enter" // raw_tracepoint sys_enter
	TPBTF       = "tpbtf_sys_enter" // tp_btf sys_enter
	Uprobe      = "uprobe_count"    // uprobe, counts
	CgroupSKB   = "cgroup_egress"   // cgroup_skb egress, counts and allows
	Netfilter   = "nf_accept"       // netfilter, counts and accepts
	Kprobe      = "kprobe_open"     // kprobe do_sys_openat2
	Fentry      = "fentry_open"     // fentry do_sys_openat2
	Fexit       = "fexit_open"      // fexit do_sys_openat2
	XDPRejected = "xdp_bad"         // refused by the verifier
)

// Bundle is an in-memory bundle holding one object, for dataplane tests. It
// implements the dataplane's view of a *format.Bundle.
type Bundle struct {
	// Digest names the bundle.
	Digest string
	obj    []byte
	progs  map[string]*format.Program
	maps   map[string]*format.Map
}

// ObjectName is the name of the single object of a test Bundle.
const ObjectName = "progs.o"

// NewBundle returns a bundle of obj (Object, ObjectV2 or ObjectBroken) named
// by digest, listing every program of the object.
func NewBundle(digest string, obj []byte) (*Bundle, error) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytesReader(obj))
	if err != nil {
		return nil, fmt.Errorf("parse test object: %w", err)
	}
	b := &Bundle{Digest: digest, obj: obj, progs: map[string]*format.Program{}, maps: map[string]*format.Map{}}
	for name, ms := range spec.Maps {
		b.maps[name] = &format.Map{Name: name, Object: ObjectName, Type: format.MapTypeName(ms.Type),
			KeySize: ms.KeySize, ValueSize: ms.ValueSize, MaxEntries: ms.MaxEntries}
	}
	for name, ps := range spec.Programs {
		typ, err := format.ProgramTypeName(ps.Type)
		if err != nil {
			return nil, err
		}
		b.progs[name] = &format.Program{Name: name, Object: ObjectName, Section: ps.SectionName, License: ps.License,
			Type: typ, AttachType: format.AttachTypeName(ps.Type, ps.AttachType)}
	}
	return b, nil
}

// Object returns the object's bytes.
func (b *Bundle) Object(name string) ([]byte, error) {
	if name != ObjectName {
		return nil, fmt.Errorf("bundle %s has no object %q", b.Digest, name)
	}
	return b.obj, nil
}

// Program returns the manifest entry of a program. Tests may change it to
// make the manifest misstate the object.
func (b *Bundle) Program(name string) (*format.Program, bool) {
	p, ok := b.progs[name]
	return p, ok
}

// Map returns the manifest entry of a map of the object.
func (b *Bundle) Map(name string) (*format.Map, bool) {
	m, ok := b.maps[name]
	return m, ok
}

// Preserve marks maps preserve, as bundle.yaml's maps[].preserve would,
// and returns b. It panics on a map the object does not declare.
func (b *Bundle) Preserve(names ...string) *Bundle {
	for _, name := range names {
		m := b.maps[name]
		if m == nil {
			panic(fmt.Sprintf("kernelprog: the object declares no map %q", name))
		}
		m.Preserve = true
	}
	return b
}
