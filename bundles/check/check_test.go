package check_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/check"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// hostBTF is this machine's kernel BTF.
const hostBTF = "/sys/kernel/btf/vmlinux"

// TestShippedBundlesRelocateOnThisKernel builds every bundle under bpf/ and
// checks it against this machine's BTF: the kernel the shipped programs are
// tested on must satisfy every relocation.
func TestShippedBundlesRelocateOnThisKernel(t *testing.T) {
	if _, err := os.Stat(hostBTF); err != nil {
		privileged.SkipOrFail(t, "no kernel BTF: %v", err)
	}
	target, err := check.LoadTarget(hostBTF)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := filepath.Glob(filepath.Join("..", "..", "bpf", "*", build.SpecFile))
	if err != nil || len(specs) == 0 {
		t.Fatalf("no bpf/*/%s found: %v", build.SpecFile, err)
	}
	relocated := 0
	for _, spec := range specs {
		dir := filepath.Dir(spec)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res, err := build.Build(context.Background(), dir, build.Options{LayoutDir: t.TempDir(), Tag: "check"})
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			in, err := check.DirInput(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(in.Programs) != len(res.Manifest.Programs) {
				t.Fatalf("%d programs read, the built manifest has %d", len(in.Programs), len(res.Manifest.Programs))
			}
			rep, err := check.Check(in, target)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range rep.Programs {
				relocated += p.Relocations
				if !p.OK || len(p.Problems) > 0 {
					t.Errorf("%s fails on this kernel: %+v", p.Program, p.Problems)
				}
			}
		})
	}
	if relocated == 0 {
		t.Error("no shipped program carries a CO-RE relocation: the check checked nothing")
	}
}

// exectrace returns the exec tracer's input and its own BTF (the types as
// vmlinux.h declared them when it was compiled).
func exectrace(t *testing.T) (check.Input, *btf.Spec) {
	t.Helper()
	dir := filepath.Join("..", "..", "bpf", "exectrace")
	in, err := check.DirInput(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(in.Objects["exectrace_bpfel.o"]))
	if err != nil {
		t.Fatal(err)
	}
	return in, spec.Types
}

// targetFrom builds a kernel BTF holding copies of the named structs of
// from, each passed through mutate first (nil: unchanged), and loads it
// back from its wire format, as a BTF file copied from a node would be.
func targetFrom(t *testing.T, from *btf.Spec, mutate map[string]func(*btf.Struct)) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range mutate {
		var s *btf.Struct
		if err := from.TypeByName(name, &s); err != nil {
			t.Fatalf("find struct %s: %v", name, err)
		}
		s = btf.Copy(s).(*btf.Struct)
		if fn != nil {
			fn(s)
		}
		if _, err := b.Add(s); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// rename renames member old of a struct to new.
func rename(old, new string) func(*btf.Struct) {
	return func(s *btf.Struct) {
		for i := range s.Members {
			if s.Members[i].Name == old {
				s.Members[i].Name = new
			}
		}
	}
}

// retype turns member name of a struct into an int of the same offset.
func retype(name string) func(*btf.Struct) {
	return func(s *btf.Struct) {
		for i := range s.Members {
			if s.Members[i].Name == name {
				s.Members[i].Type = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
			}
		}
	}
}

func TestCheckNamesTheMissingTypeAndField(t *testing.T) {
	in, local := exectrace(t)
	const task, tp = "task_struct", "trace_event_raw_sched_process_exec"
	tests := []struct {
		name string
		// mutate says which structs the target has and how they differ
		// from the program's own.
		mutate map[string]func(*btf.Struct)
		// wantOK is whether exec_trace would relocate.
		wantOK bool
		// wantType and wantField are what the first problem names.
		wantType, wantField string
		// wantMessage is a part of the first problem's message.
		wantMessage string
	}{
		{
			name:   "the program's own types relocate",
			mutate: map[string]func(*btf.Struct){task: nil, tp: nil},
			wantOK: true,
		},
		{
			name:     "task_struct.real_parent renamed",
			mutate:   map[string]func(*btf.Struct){task: rename("real_parent", "parent_task"), tp: nil},
			wantType: "struct task_struct", wantField: "real_parent",
			wantMessage: "no field real_parent in struct task_struct",
		},
		{
			name:     "task_struct.tgid removed (renamed away)",
			mutate:   map[string]func(*btf.Struct){task: rename("tgid", "tgid_gone"), tp: nil},
			wantType: "struct task_struct", wantField: "tgid",
		},
		{
			name:     "real_parent became an integer: a pointer read no longer matches",
			mutate:   map[string]func(*btf.Struct){task: retype("real_parent"), tp: nil},
			wantType: "struct task_struct", wantField: "real_parent",
		},
		{
			name:     "the tracepoint record lost __data_loc_filename",
			mutate:   map[string]func(*btf.Struct){task: nil, tp: rename("__data_loc_filename", "filename_loc")},
			wantType: "struct " + tp, wantField: "__data_loc_filename",
		},
		{
			name:     "no task_struct at all",
			mutate:   map[string]func(*btf.Struct){tp: nil},
			wantType: "struct task_struct", wantField: "real_parent",
			wantMessage: "no type struct task_struct",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := check.Check(in, targetFrom(t, local, tt.mutate))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Programs) != 1 {
				t.Fatalf("results %+v, want exec_trace only", rep.Programs)
			}
			p := rep.Programs[0]
			if p.Program != "exec_trace" || p.Relocations != 3 {
				t.Errorf("result %+v, want exec_trace with 3 relocations", p)
			}
			if p.OK != tt.wantOK || (len(rep.Failed()) == 0) != tt.wantOK {
				t.Fatalf("ok %v, want %v: %+v", p.OK, tt.wantOK, p.Problems)
			}
			if tt.wantOK {
				if len(p.Problems) != 0 {
					t.Errorf("problems %+v, want none", p.Problems)
				}
				return
			}
			if len(p.Problems) == 0 {
				t.Fatal("failed without a problem")
			}
			pr := p.Problems[0]
			if pr.Type != tt.wantType || pr.Field != tt.wantField || pr.Guarded || !strings.Contains(pr.Message, tt.wantMessage) {
				t.Errorf("problem %+v, want type %q field %q message with %q", pr, tt.wantType, tt.wantField, tt.wantMessage)
			}
			t.Logf("%+v", p.Problems)
		})
	}
}

func TestCheckRefusesBrokenInput(t *testing.T) {
	in, local := exectrace(t)
	target := targetFrom(t, local, map[string]func(*btf.Struct){"task_struct": nil})
	tests := []struct {
		name string
		// in is the broken input.
		in check.Input
	}{
		{name: "program not in its object", in: check.Input{Programs: []check.Program{{Name: "nope", Object: "exectrace_bpfel.o"}}, Objects: in.Objects}},
		{name: "object missing", in: check.Input{Programs: []check.Program{{Name: "exec_trace", Object: "other.o"}}, Objects: in.Objects}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := check.Check(tt.in, target); !errors.Is(err, bundles.ErrBundleInvalid) {
				t.Fatalf("Check = %v, want ErrBundleInvalid", err)
			}
		})
	}
	if _, err := check.LoadTarget(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadTarget of a missing file succeeded")
	}
}
