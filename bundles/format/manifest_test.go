package format_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
)

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func validManifest() *format.Manifest {
	return &format.Manifest{
		SchemaVersion: format.SchemaVersion,
		Name:          "xdp-pod-filter",
		Version:       "0.1.0",
		Objects:       []format.Object{{Name: "xdpfilter_bpfel.o", Digest: digestA, Size: 100, Endianness: "little"}},
		Programs: []format.Program{{
			Name: "xdp_pod_filter", Object: "xdpfilter_bpfel.o", Section: "xdp", Type: "xdp",
			License: "GPL", Attach: format.AttachHint{Kind: "xdp"},
		}},
		Maps:       []format.Map{{Name: "rule_hits", Object: "xdpfilter_bpfel.o", Type: "array", KeySize: 4, ValueSize: 8, MaxEntries: 4}},
		MetricMaps: []string{"rule_hits"},
		MinKernel:  "6.1",
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *format.Manifest) // breaks a valid manifest
		want   error                    // sentinel the error wraps; nil = valid
		msg    string                   // text the error must contain
	}{
		{name: "valid", mutate: func(*format.Manifest) {}},
		{name: "schema version", mutate: func(m *format.Manifest) { m.SchemaVersion = 2 }, want: bundles.ErrBundleInvalid, msg: "schemaVersion is 2"},
		{name: "object path", mutate: func(m *format.Manifest) { m.Objects[0].Name = "../etc/passwd" }, want: bundles.ErrBundleInvalid, msg: "objects[0].name"},
		{name: "object slash", mutate: func(m *format.Manifest) { m.Objects[0].Name = "a/b.o" }, want: bundles.ErrBundleInvalid, msg: "path separator"},
		{name: "object NUL", mutate: func(m *format.Manifest) { m.Objects[0].Name = "a\x00.o" }, want: bundles.ErrBundleInvalid, msg: "control character"},
		{name: "object dotdot", mutate: func(m *format.Manifest) { m.Objects[0].Name = ".." }, want: bundles.ErrBundleInvalid, msg: "is a path"},
		{name: "object too big", mutate: func(m *format.Manifest) { m.Objects[0].Size = format.MaxObjectSize + 1 }, want: bundles.ErrTooLarge, msg: "objects[0].size"},
		{name: "bad digest", mutate: func(m *format.Manifest) { m.Objects[0].Digest = "sha256:zz" }, want: bundles.ErrBundleInvalid, msg: "objects[0].digest"},
		{name: "bad endianness", mutate: func(m *format.Manifest) { m.Objects[0].Endianness = "middle" }, want: bundles.ErrBundleInvalid, msg: "endianness"},
		{name: "duplicate program", mutate: func(m *format.Manifest) { m.Programs = append(m.Programs, m.Programs[0]) }, want: bundles.ErrBundleInvalid, msg: `programs[1].name duplicate program "xdp_pod_filter"`},
		{name: "program in unknown object", mutate: func(m *format.Manifest) { m.Programs[0].Object = "other.o" }, want: bundles.ErrBundleInvalid, msg: "programs[0].object"},
		{name: "unknown program type", mutate: func(m *format.Manifest) { m.Programs[0].Type = "XDP" }, want: bundles.ErrBundleInvalid, msg: `unknown program type "XDP"`},
		{name: "unknown attach kind", mutate: func(m *format.Manifest) { m.Programs[0].Attach.Kind = "socket" }, want: bundles.ErrBundleInvalid, msg: "programs[0].attach.kind"},
		{name: "unknown attach type", mutate: func(m *format.Manifest) { m.Programs[0].AttachType = "Bogus" }, want: bundles.ErrBundleInvalid, msg: "programs[0].attachType"},
		{name: "program name too long", mutate: func(m *format.Manifest) { m.Programs[0].Name = strings.Repeat("a", format.MaxNameLength+1) }, want: bundles.ErrTooLarge, msg: "programs[0].name"},
		{name: "too many programs", mutate: func(m *format.Manifest) {
			for i := range format.MaxPrograms {
				p := m.Programs[0]
				p.Name = fmt.Sprintf("p%d", i)
				m.Programs = append(m.Programs, p)
			}
		}, want: bundles.ErrTooLarge, msg: "programs has 65 entries"},
		{name: "too many objects", mutate: func(m *format.Manifest) {
			for i := range format.MaxObjects {
				o := m.Objects[0]
				o.Name = fmt.Sprintf("o%d.o", i)
				m.Objects = append(m.Objects, o)
			}
		}, want: bundles.ErrTooLarge, msg: "objects has 17 entries"},
		{name: "duplicate map", mutate: func(m *format.Manifest) { m.Maps = append(m.Maps, m.Maps[0]) }, want: bundles.ErrBundleInvalid, msg: "maps[1].name duplicate"},
		{name: "map of absurd size", mutate: func(m *format.Manifest) { m.Maps[0].ValueSize, m.Maps[0].MaxEntries = 1<<20, 1<<20 }, want: bundles.ErrTooLarge, msg: "maps[0] rule_hits declares 1099511627776 bytes"},
		// 1-byte keys and values: 2 bytes an entry declared, 80 in the kernel.
		{name: "preallocated hash of tiny elements", mutate: func(m *format.Manifest) {
			m.Maps[0].Type, m.Maps[0].KeySize, m.Maps[0].ValueSize, m.Maps[0].MaxEntries = "hash", 1, 1, 256<<20
		}, want: bundles.ErrTooLarge, msg: "maps[0] rule_hits declares 21474836480 bytes (hash"},
		{name: "maps within the limit one by one, not together", mutate: func(m *format.Manifest) {
			for i := range 3 {
				mp := m.Maps[0]
				mp.Name, mp.Type, mp.KeySize, mp.ValueSize, mp.MaxEntries = fmt.Sprintf("big%d", i), "array", 4, 4096, 100_000
				m.Maps = append(m.Maps, mp)
			}
		}, want: bundles.ErrTooLarge, msg: "maps declare 1228800032 bytes together"},
		{name: "ring buffer of absurd size", mutate: func(m *format.Manifest) {
			m.Maps[0].Type, m.Maps[0].KeySize, m.Maps[0].ValueSize, m.Maps[0].MaxEntries = "ringbuf", 0, 0, 1<<31
		}, want: bundles.ErrTooLarge, msg: "maps[0]"},
		{name: "large ring buffer within the limit", mutate: func(m *format.Manifest) {
			m.Maps[0].Type, m.Maps[0].KeySize, m.Maps[0].ValueSize, m.Maps[0].MaxEntries = "ringbuf", 0, 0, 256<<20
		}},
		{name: "metric map unknown", mutate: func(m *format.Manifest) { m.MetricMaps = []string{"nope"} }, want: bundles.ErrBundleInvalid, msg: `metricMaps[0] "nope" is not in maps`},
		{name: "bad min kernel", mutate: func(m *format.Manifest) { m.MinKernel = "six" }, want: bundles.ErrBundleInvalid, msg: "minKernel"},
		{name: "no programs", mutate: func(m *format.Manifest) { m.Programs = nil }, want: bundles.ErrBundleInvalid, msg: "programs no program"},
		{name: "bad bundle name", mutate: func(m *format.Manifest) { m.Name = "Bad Name" }, want: bundles.ErrBundleInvalid, msg: "name"},
		{name: "control char in description", mutate: func(m *format.Manifest) { m.Description = "a\x1b[31m" }, want: bundles.ErrBundleInvalid, msg: "description contains a control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			tt.mutate(m)
			err := m.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate() = %v, want errors.Is %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate() = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

func TestParseManifest(t *testing.T) {
	good, err := validManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte // config blob
		want error  // sentinel; nil = parses
		msg  string // text the error must contain
	}{
		{name: "round trip", data: good},
		{name: "unknown field", data: []byte(strings.Replace(string(good), `"name":`, `"evil":1,"name":`, 1)), want: bundles.ErrBundleInvalid, msg: `unknown field "evil"`},
		{name: "trailing data", data: append(append([]byte{}, good...), []byte(` {}`)...), want: bundles.ErrBundleInvalid, msg: "trailing data"},
		{name: "oversize", data: append(append([]byte{}, good...), make([]byte, format.MaxConfigSize)...), want: bundles.ErrTooLarge, msg: "limit 1048576"},
		{name: "not json", data: []byte("name: x"), want: bundles.ErrBundleInvalid, msg: "decode manifest"},
		{name: "valid json invalid manifest", data: []byte(`{"schemaVersion":1}`), want: bundles.ErrBundleInvalid, msg: "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := format.ParseManifest(tt.data)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseManifest() = %v", err)
				}
				again, err := m.Marshal()
				if err != nil || string(again) != string(tt.data) {
					t.Fatalf("round trip changed the manifest: %v\n%s\n%s", err, again, tt.data)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseManifest() = %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	good, err := validManifest().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schemaVersion":1,"name":"x","objects":[{"name":"../a","digest":"` + digestA + `","size":1,"endianness":"little"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := format.ParseManifest(data)
		if err != nil {
			if !errors.Is(err, bundles.ErrBundleInvalid) && !errors.Is(err, bundles.ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrBundleInvalid nor ErrTooLarge", err)
			}
			return
		}
		// Whatever parses is valid, has safe file names, and re-encodes to
		// something that parses to the same manifest.
		for _, o := range m.Objects {
			if err := format.CheckFileName(o.Name); err != nil {
				t.Fatalf("accepted object name %q: %v", o.Name, err)
			}
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := format.ParseManifest(again)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		a, _ := json.Marshal(m)
		b, _ := json.Marshal(m2)
		if string(a) != string(b) {
			t.Fatalf("round trip differs:\n%s\n%s", a, b)
		}
	})
}
