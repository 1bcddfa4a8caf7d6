package build_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"oras.land/oras-go/v2/content/oci"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func TestBuildFillsManifestFromELF(t *testing.T) {
	dir := testbundle.Dir(t, testbundle.Source{})
	layout := t.TempDir()
	res, err := build.Build(context.Background(), dir, build.Options{LayoutDir: layout, Tag: "v1"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	m := res.Manifest
	xdp, ok := m.Program(testbundle.XDPProgram)
	if !ok {
		t.Fatalf("no %s in %+v", testbundle.XDPProgram, m.Programs)
	}
	want := format.Program{Name: "xdp_pod_filter", Object: testbundle.ObjectFile, Section: "xdp", Type: "xdp", AttachType: "XDP",
		License: "GPL", Attach: format.AttachHint{Kind: "xdp"}}
	if *xdp != want {
		t.Errorf("xdp program = %+v, want %+v", *xdp, want)
	}
	tp, _ := m.Program(testbundle.TracepointProgram)
	if tp == nil || tp.Type != "tracepoint" || tp.Section != "tracepoint/syscalls/sys_enter_openat" || tp.Attach.Target != "syscalls/sys_enter_openat" {
		t.Errorf("tracepoint program = %+v", tp)
	}
	if len(m.Maps) != 1 || m.Maps[0] != (format.Map{Name: "rule_hits", Object: testbundle.ObjectFile, Type: "array", KeySize: 4, ValueSize: 8, MaxEntries: 4}) {
		t.Errorf("maps = %+v", m.Maps)
	}
	if m.Objects[0].Endianness != "little" || m.MinKernel != "6.1" {
		t.Errorf("objects = %+v, minKernel %q", m.Objects, m.MinKernel)
	}

	// The layout holds the tag, and building again gives the same digest.
	store, err := oci.New(layout)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := store.Resolve(context.Background(), "v1")
	if err != nil || desc.Digest.String() != res.Digest {
		t.Fatalf("layout tag v1 = %v, %v; want %s", desc.Digest, err, res.Digest)
	}
	again, err := build.Build(context.Background(), dir, build.Options{LayoutDir: t.TempDir(), Tag: "v1"})
	if err != nil || again.Digest != res.Digest {
		t.Fatalf("rebuild digest = %s, %v; want %s (reproducible)", again.Digest, err, res.Digest)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // breaks a valid bundle directory
		want  error                          // sentinel the error wraps
		msg   string                         // text the error must contain
	}{
		{
			name: "ELF that does not parse",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, testbundle.ObjectFile), "\x7fELF not really")
			},
			want: bundles.ErrBundleInvalid, msg: "parse ELF " + testbundle.ObjectFile,
		},
		{
			name: "program missing from ELF",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "name: trace_open", "name: trace_close")
			},
			want: bundles.ErrBundleInvalid, msg: `program "trace_close" is not in any object`,
		},
		{
			name: "object path escapes the directory",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "file: "+testbundle.ObjectFile, "file: ../"+testbundle.ObjectFile)
			},
			want: bundles.ErrBundleInvalid, msg: "objects[0].file",
		},
		{
			name: "duplicate program",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "name: trace_open", "name: xdp_pod_filter")
			},
			want: bundles.ErrBundleInvalid, msg: `duplicate program "xdp_pod_filter"`,
		},
		{
			name: "unknown field",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "minKernel:", "maxKernel: \"9.9\"\nminKernel:")
			},
			want: bundles.ErrBundleInvalid, msg: `unknown field "maxKernel"`,
		},
		{
			name: "unknown attach kind",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "attach: xdp", "attach: socket")
			},
			want: bundles.ErrBundleInvalid, msg: `programs[0].attach: "socket"`,
		},
		{
			name: "attach kind the ELF type does not fit",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "attach: tracepoint", "attach: cgroup")
			},
			want: bundles.ErrBundleInvalid, msg: `programs[1] "trace_open": a tracepoint program (section tracepoint/syscalls/sys_enter_openat) cannot be attached as cgroup`,
		},
		{
			name: "declared type differs from the ELF's",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "attach: xdp", "attach: xdp\n    type: sched_cls")
			},
			want: bundles.ErrBundleInvalid, msg: `programs[0] "xdp_pod_filter": declared type sched_cls, the ELF program (section xdp) is xdp`,
		},
		{
			name: "metric map not declared",
			setup: func(t *testing.T, dir string) {
				editSpec(t, dir, "metricMaps: [rule_hits]", "metricMaps: [drops]")
			},
			want: bundles.ErrBundleInvalid, msg: `metricMaps[0] "drops" is not in maps`,
		},
	}
	base := testbundle.Dir(t, testbundle.Source{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{build.SpecFile, testbundle.ObjectFile} {
				data, err := os.ReadFile(filepath.Join(base, f))
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, f), string(data))
			}
			tt.setup(t, dir)
			layout := t.TempDir()
			_, err := build.Build(context.Background(), dir, build.Options{LayoutDir: layout})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Build() = %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
			if entries, _ := os.ReadDir(layout); len(entries) != 0 {
				t.Errorf("a failed build wrote %d entries into the layout", len(entries))
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(`name: xdp-pod-filter
version: 0.1.0
objects:
  - file: xdpfilter_bpfel.o
programs:
  - name: xdp_pod_filter
    attach: xdp
metricMaps: [rule_hits]
minKernel: "6.1"
`))
	f.Add([]byte(`objects: [{file: ../../etc/passwd}]`))
	f.Add([]byte(`{"name": 1}`))
	f.Add([]byte("programs: [{name: a, attach: xdp}, {name: a, attach: tc}]\nobjects: [{file: a.o}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := build.ParseSpec(data)
		if err != nil {
			if !errors.Is(err, bundles.ErrBundleInvalid) && !errors.Is(err, bundles.ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrBundleInvalid nor ErrTooLarge", err)
			}
			return
		}
		for _, o := range s.Objects {
			if !filepath.IsLocal(o.File) || format.CheckFileName(filepath.Base(o.File)) != nil {
				t.Fatalf("accepted object file %q", o.File)
			}
		}
		seen := map[string]bool{}
		for _, p := range s.Programs {
			if seen[p.Name] {
				t.Fatalf("accepted duplicate program %q", p.Name)
			}
			seen[p.Name] = true
		}
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func editSpec(t *testing.T, dir, old, new string) {
	t.Helper()
	path := filepath.Join(dir, build.SpecFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("bundle.yaml has no %q", old)
	}
	writeFile(t, path, strings.Replace(string(data), old, new, 1))
}
