package loader_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

func spec(t *testing.T) *ebpf.CollectionSpec {
	t.Helper()
	cs, err := loader.ParseELF(kernelprog.Object)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestParseELF(t *testing.T) {
	cs := spec(t)
	for _, name := range []string{kernelprog.XDPFilter, kernelprog.TCCount, kernelprog.Uprobe} {
		if cs.Programs[name] == nil {
			t.Errorf("program %s missing", name)
		}
	}
	if _, err := loader.ParseELF([]byte("not an ELF")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestCheckMapSizes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*ebpf.MapSpec) // applied to every map of the test object
		want   bool                // refused
	}{
		{name: "the object as built", mutate: func(*ebpf.MapSpec) {}},
		{name: "billions of entries", mutate: func(m *ebpf.MapSpec) { m.MaxEntries = 1 << 31 }, want: true},
		{name: "huge values", mutate: func(m *ebpf.MapSpec) { m.ValueSize, m.MaxEntries = 1<<20, 1<<12 }, want: true},
		{name: "per-CPU counted per CPU", mutate: func(m *ebpf.MapSpec) {
			m.Type, m.KeySize, m.ValueSize, m.MaxEntries = ebpf.PerCPUArray, 4, 1<<20, 512 // just over the limit on one CPU
		}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := spec(t)
			for _, m := range cs.Maps {
				tt.mutate(m)
			}
			err := loader.CheckMapSizes(cs)
			if got := err != nil; got != tt.want {
				t.Fatalf("CheckMapSizes = %v, want refused %t", err, tt.want)
			}
			if tt.want && (!errors.Is(err, bundles.ErrTooLarge) || !strings.Contains(err.Error(), "bytes")) {
				t.Fatalf("CheckMapSizes = %v, want it to wrap ErrTooLarge and say how much", err)
			}
			if tt.want {
				if _, err := loader.LoadMaps(cs, nil); !errors.Is(err, bundles.ErrTooLarge) {
					t.Fatalf("LoadMaps = %v, want refused before any kernel call", err)
				}
			}
		})
	}
}

// TestCheckMapBudget: beyond the per-map limit, the number of maps and the
// bytes they ask for together are capped, counting what the kernel adds per
// element, all before any kernel call.
func TestCheckMapBudget(t *testing.T) {
	maps := func(n int, ms ebpf.MapSpec) *ebpf.CollectionSpec {
		cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}}
		for i := range n {
			m := ms
			m.Name = fmt.Sprintf("m%d", i)
			cs.Maps[m.Name] = &m
		}
		return cs
	}
	tests := []struct {
		name string
		spec *ebpf.CollectionSpec
		want string // "" when accepted, else what the error says
	}{
		{name: "a few small maps", spec: maps(8, ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1024})},
		{name: "too many maps", spec: maps(format.MaxMaps+1, ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}),
			want: "declares 65 maps"},
		// 2 bytes an element as declared (512 MiB), some 80 in the kernel.
		{name: "preallocated hash with tiny keys", spec: maps(1, ebpf.MapSpec{Type: ebpf.Hash, KeySize: 1, ValueSize: 1, MaxEntries: 256 << 20}),
			want: "kernel overhead included"},
		{name: "each within the limit, not together", spec: maps(3, ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4096, MaxEntries: 100_000}),
			want: "3 maps ask for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loader.CheckMapSizes(tt.spec)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckMapSizes = %v", err)
				}
				return
			}
			if !errors.Is(err, bundles.ErrTooLarge) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckMapSizes = %v, want ErrTooLarge saying %q", err, tt.want)
			}
			if _, err := loader.LoadMaps(tt.spec, nil); !errors.Is(err, bundles.ErrTooLarge) {
				t.Fatalf("LoadMaps = %v, want refused before any kernel call", err)
			}
		})
	}
}

func TestSetConstants(t *testing.T) {
	for _, tc := range []struct {
		name string
		// consts to set.
		consts []loader.Constant
		// check reads the result back, nil when an error is expected.
		check func(t *testing.T, cs *ebpf.CollectionSpec)
	}{
		{name: "decimal u32", consts: []loader.Constant{{Name: "drop_action", Value: "2"}}, check: func(t *testing.T, cs *ebpf.CollectionSpec) {
			var v uint32
			if err := cs.Variables["drop_action"].Get(&v); err != nil || v != 2 {
				t.Fatalf("drop_action = %d, %v", v, err)
			}
		}},
		{name: "hex u32", consts: []loader.Constant{{Name: "drop_action", Value: "0xff"}}, check: func(t *testing.T, cs *ebpf.CollectionSpec) {
			var v uint32
			if err := cs.Variables["drop_action"].Get(&v); err != nil || v != 255 {
				t.Fatalf("drop_action = %d, %v", v, err)
			}
		}},
		{name: "bool false", consts: []loader.Constant{{Name: "enabled", Value: "false"}}, check: func(t *testing.T, cs *ebpf.CollectionSpec) {
			var v uint8
			if err := cs.Variables["enabled"].Get(&v); err != nil || v != 0 {
				t.Fatalf("enabled = %d, %v", v, err)
			}
		}},
		{name: "hex bytes", consts: []loader.Constant{{Name: "marker", Value: "0xdeadbeef"}}, check: func(t *testing.T, cs *ebpf.CollectionSpec) {
			v := make([]byte, 4)
			if err := cs.Variables["marker"].Get(v); err != nil || binary.BigEndian.Uint32(v) != 0xdeadbeef {
				t.Fatalf("marker = %x, %v", v, err)
			}
		}},
		{name: "unknown name", consts: []loader.Constant{{Name: "nope", Value: "1"}}},
		{name: "map is not a constant", consts: []loader.Constant{{Name: "counters", Value: "1"}}},
		{name: "u32 overflow", consts: []loader.Constant{{Name: "drop_action", Value: "4294967296"}}},
		{name: "negative unsigned", consts: []loader.Constant{{Name: "drop_action", Value: "-1"}}},
		{name: "bool from int", consts: []loader.Constant{{Name: "enabled", Value: "1"}}},
		{name: "array from int", consts: []loader.Constant{{Name: "marker", Value: "7"}}},
		{name: "array too short", consts: []loader.Constant{{Name: "marker", Value: "0x01"}}},
		{name: "bad hex", consts: []loader.Constant{{Name: "marker", Value: "0xzz00zz00"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := spec(t)
			err := loader.SetConstants(cs, tc.consts)
			if tc.check == nil {
				if !errors.Is(err, loader.ErrInvalidConstant) {
					t.Fatalf("want ErrInvalidConstant, got %v", err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cs)
		})
	}
}

func TestDecodeMapEntries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry loader.MapEntry
		// key and value expected; nil key means an error is expected.
		key, value []byte
	}{
		{name: "hex", entry: loader.MapEntry{Map: "deny", Key: "0f27", Value: "01"}, key: []byte{0x0f, 0x27}, value: []byte{1}},
		{name: "hex default encoding upper case", entry: loader.MapEntry{Map: "deny", Key: "0F27", Value: "FF", Encoding: loader.EncodingHex}, key: []byte{0x0f, 0x27}, value: []byte{0xff}},
		{name: "base64", entry: loader.MapEntry{Map: "counters", Key: "AAAAAA==", Value: "AQAAAAAAAAA=", Encoding: loader.EncodingBase64}, key: []byte{0, 0, 0, 0}, value: []byte{1, 0, 0, 0, 0, 0, 0, 0}},
		{name: "unknown map", entry: loader.MapEntry{Map: "nope", Key: "0f27", Value: "01"}},
		{name: "short key", entry: loader.MapEntry{Map: "deny", Key: "0f", Value: "01"}},
		{name: "long value", entry: loader.MapEntry{Map: "deny", Key: "0f27", Value: "0101"}},
		{name: "bad hex", entry: loader.MapEntry{Map: "deny", Key: "zz27", Value: "01"}},
		{name: "bad base64", entry: loader.MapEntry{Map: "deny", Key: "!!", Value: "AQ==", Encoding: loader.EncodingBase64}},
		{name: "data section", entry: loader.MapEntry{Map: ".rodata", Key: "00000000", Value: "00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loader.DecodeMapEntries(spec(t), []loader.MapEntry{tc.entry})
			if tc.key == nil {
				if !errors.Is(err, loader.ErrInvalidMapEntry) {
					t.Fatalf("want ErrInvalidMapEntry, got %v (%v)", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got[0].Key) != string(tc.key) || string(got[0].Value) != string(tc.value) || got[0].Map != tc.entry.Map {
				t.Fatalf("got %+v", got[0])
			}
		})
	}
}

// TestMapEntriesRefuseKernelObjects: spec.mapEntries writes plain data
// only. A value (or a storage map's key) the kernel reads as a file
// descriptor of the agent would let a BpfProgram author put any program,
// map or socket the agent holds into a map.
func TestMapEntriesRefuseKernelObjects(t *testing.T) {
	for _, typ := range []ebpf.MapType{
		ebpf.ProgramArray, ebpf.ArrayOfMaps, ebpf.HashOfMaps,
		ebpf.SockMap, ebpf.SockHash, ebpf.ReusePortSockArray, ebpf.XSKMap, ebpf.PerfEventArray,
		ebpf.DevMap, ebpf.DevMapHash, ebpf.CPUMap, ebpf.CGroupArray,
		ebpf.SkStorage, ebpf.InodeStorage, ebpf.TaskStorage, ebpf.CgroupStorage,
		ebpf.Queue, ebpf.RingBuf, ebpf.PerCPUHash,
	} {
		t.Run(typ.String(), func(t *testing.T) {
			cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{"m": {Name: "m", Type: typ, KeySize: 4, ValueSize: 4, MaxEntries: 4}}}
			entry := loader.MapEntry{Map: "m", Key: "00000000", Value: "03000000"} // fd 3
			if got, err := loader.DecodeMapEntries(cs, []loader.MapEntry{entry}); !errors.Is(err, loader.ErrInvalidMapEntry) {
				t.Fatalf("DecodeMapEntries = %v, %v; want ErrInvalidMapEntry", got, err)
			}
		})
	}
	for _, typ := range []ebpf.MapType{ebpf.Hash, ebpf.LRUHash, ebpf.Array, ebpf.LPMTrie} {
		cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{"m": {Name: "m", Type: typ, KeySize: 4, ValueSize: 4, MaxEntries: 4}}}
		if _, err := loader.DecodeMapEntries(cs, []loader.MapEntry{{Map: "m", Key: "00000000", Value: "03000000"}}); err != nil {
			t.Errorf("%s: %v, want writable", typ, err)
		}
	}
}

func TestVerifierTail(t *testing.T) {
	log := []string{"0: R1=ctx()", "1: (71) r0 = *(u8 *)(r2 +64)", "invalid access to packet, off=64 size=1", "processed 3 insns"}
	err := error(&ebpf.VerifierError{Cause: errors.New("permission denied"), Log: log})
	tail, ok := loader.VerifierTail(err, 80)
	if !ok || !strings.Contains(tail, "invalid access to packet") || strings.Contains(tail, "R1=ctx") {
		t.Fatalf("tail = %q, %v", tail, ok)
	}
	if _, ok := loader.VerifierTail(errors.New("other"), 80); ok {
		t.Fatal("a plain error is not a verifier error")
	}
}
