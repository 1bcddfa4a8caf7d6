package loader_test

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// shippedObjects returns the ELF objects of the shipped bundles (bpf/*/*.o)
// and the kernel test program, the seeds of the fuzz targets.
func shippedObjects(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "bpf", "*", "*.o"))
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(files)
	objs := [][]byte{kernelprog.Object}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		objs = append(objs, b)
	}
	if len(objs) < 2 {
		tb.Fatalf("no shipped objects under bpf/")
	}
	return objs
}

// FuzzCollectionSpec feeds crafted ELF bytes to the loader's ELF intake: it
// must return a CollectionSpec or an error, never panic. Seeds are the
// shipped objects, whole, truncated and with a corrupted header.
func FuzzCollectionSpec(f *testing.F) {
	for _, obj := range shippedObjects(f) {
		f.Add(obj)
		f.Add(obj[:len(obj)/2])
		hdr := append([]byte(nil), obj...)
		hdr[0x20] ^= 0xff // e_phoff/e_shoff
		f.Add(hdr)
	}
	f.Add([]byte("\x7fELF"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, obj []byte) {
		cs, err := parseWithin(t, obj, 5*time.Second)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse ELF object") {
				t.Fatalf("error does not say what failed: %v", err)
			}
			return
		}
		// What the dataplane does next with a parsed object must not
		// panic either.
		for name, v := range cs.Variables {
			if v.Constant() {
				_ = loader.SetConstants(cs, []loader.Constant{{Name: name, Value: "1"}})
			}
		}
		for name := range cs.Maps {
			_, _ = loader.DecodeMapEntries(cs, []loader.MapEntry{{Map: name, Key: "00", Value: "00"}})
		}
	})
}

// parseWithin parses obj, failing the test when that takes longer than d (a
// crafted object must not hang the agent).
func parseWithin(t *testing.T, obj []byte, d time.Duration) (*ebpf.CollectionSpec, error) {
	t.Helper()
	type result struct {
		cs  *ebpf.CollectionSpec
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		cs, err := loader.ParseELF(obj)
		done <- result{cs, err}
	}()
	select {
	case r := <-done:
		return r.cs, r.err
	case <-time.After(d):
		t.Fatalf("parsing %d bytes still runs after %s", len(obj), time.Since(start))
		return nil, nil
	}
}

// FuzzPlan turns a BpfProgram's constants and map entries into what is
// loaded from a shipped object (SetConstants, DecodeMapEntries): it never
// panics, and a refusal is always an ErrInvalidConstant or
// ErrInvalidMapEntry that names the constant or map entry.
func FuzzPlan(f *testing.F) {
	objs := shippedObjects(f)
	f.Add(uint8(0), "drop_action", "2", "counters", "00000000", "0000000000000000", "")
	f.Add(uint8(0), "enabled", "false", "counters", "AAAAAA==", "AAAAAAAAAAA=", "base64")
	f.Add(uint8(1), "missing", "0x00", "rules", "zz", "", "hex")
	f.Add(uint8(2), "", "-1", "", "", "", "rot13")
	f.Add(uint8(3), "x", "0xffffffffffffffffff", "m", "00", "00", "")
	f.Fuzz(func(t *testing.T, which uint8, constName, constValue, mapName, key, value, encoding string) {
		cs, err := loader.ParseELF(objs[int(which)%len(objs)])
		if err != nil {
			t.Fatal(err)
		}
		if err := loader.SetConstants(cs, []loader.Constant{{Name: constName, Value: constValue}}); err != nil {
			if !errors.Is(err, loader.ErrInvalidConstant) || !strings.Contains(err.Error(), constName) {
				t.Fatalf("constant %q = %q: unclear refusal: %v", constName, constValue, err)
			}
		}
		entries, err := loader.DecodeMapEntries(cs, []loader.MapEntry{{Map: mapName, Key: key, Value: value, Encoding: loader.Encoding(encoding)}})
		if err != nil {
			if !errors.Is(err, loader.ErrInvalidMapEntry) || !strings.Contains(err.Error(), "map entry 0") {
				t.Fatalf("map entry %q: unclear refusal: %v", mapName, err)
			}
			return
		}
		ms := cs.Maps[mapName]
		if len(entries) != 1 || len(entries[0].Key) != int(ms.KeySize) || len(entries[0].Value) != int(ms.ValueSize) {
			t.Fatalf("accepted entry %+v does not fit map %s (key %d, value %d bytes)", entries, mapName, ms.KeySize, ms.ValueSize)
		}
	})
}
