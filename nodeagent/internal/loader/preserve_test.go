package loader_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// TestCheckPreserved: a running map stands in for a preserved map only
// when its type, key size, value size, max entries and flags all equal the
// new declaration; the error names the map and every difference.
func TestCheckPreserved(t *testing.T) {
	counters := loader.MapShape{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 2}
	with := func(mod func(*loader.MapShape)) loader.MapShape {
		s := counters
		mod(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		want loader.MapShape
		msgs []string // each must appear; none: compatible
	}{
		{name: "same", want: counters},
		{name: "value size", want: with(func(s *loader.MapShape) { s.ValueSize = 16 }), msgs: []string{"value size 8, new version 16"}},
		{name: "key size", want: with(func(s *loader.MapShape) { s.KeySize = 8 }), msgs: []string{"key size 4, new version 8"}},
		{name: "larger array", want: with(func(s *loader.MapShape) { s.MaxEntries = 4 }), msgs: []string{"max entries 2, new version 4"}},
		{name: "smaller array", want: with(func(s *loader.MapShape) { s.MaxEntries = 1 }), msgs: []string{"max entries 2, new version 1"}},
		{name: "type", want: with(func(s *loader.MapShape) { s.Type = ebpf.PerCPUArray }), msgs: []string{"type Array, new version PerCPUArray"}},
		{name: "flags", want: with(func(s *loader.MapShape) { s.Flags = 1 << 10 }), msgs: []string{"flags 0x0, new version 0x400"}},
		{name: "several", want: with(func(s *loader.MapShape) { s.ValueSize, s.MaxEntries = 16, 4 }),
			msgs: []string{"value size 8, new version 16; max entries 2, new version 4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := loader.CheckPreserved("counters", counters, tc.want)
			if len(tc.msgs) == 0 {
				if err != nil {
					t.Fatalf("CheckPreserved = %v, want compatible", err)
				}
				return
			}
			if !errors.Is(err, loader.ErrMapIncompatible) || !strings.Contains(err.Error(), "preserved map counters") {
				t.Fatalf("CheckPreserved = %v, want ErrMapIncompatible naming the map", err)
			}
			for _, m := range tc.msgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("CheckPreserved = %v, want it to say %q", err, m)
				}
			}
		})
	}
}
