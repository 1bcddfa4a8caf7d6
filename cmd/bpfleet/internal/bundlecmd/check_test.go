package bundlecmd_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfleet/bpfleet/cmd/bpfleet/internal/bundlecmd"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry"
)

// exectraceDir is the shipped exec tracer, which reads task_struct fields
// with BPF_CORE_READ.
var exectraceDir = filepath.Join("..", "..", "..", "..", "bpf", "exectrace")

// brokenBTF writes a kernel BTF file whose task_struct (the exec tracer's
// own copy) calls real_parent parent_task.
func brokenBTF(t *testing.T) string {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(filepath.Join(exectraceDir, "exectrace_bpfel.o"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"task_struct", "trace_event_raw_sched_process_exec"} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(name, &s); err != nil {
			t.Fatal(err)
		}
		s = btf.Copy(s).(*btf.Struct)
		for i := range s.Members {
			if s.Members[i].Name == "real_parent" {
				s.Members[i].Name = "parent_task"
			}
		}
		if _, err := b.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestCheck(t *testing.T) {
	const hostBTF = "/sys/kernel/btf/vmlinux"
	if _, err := os.Stat(hostBTF); err != nil {
		privileged.SkipOrFail(t, "no kernel BTF: %v", err)
	}
	reg := registry.Start(t, registry.Options{})
	layout := t.TempDir()
	ref := reg.Ref("ebpf/exectrace", "v1")
	mustRun(t, "build", exectraceDir, "-t", ref, "--layout", layout)
	mustRun(t, "push", ref, "--layout", layout)
	broken := brokenBTF(t)

	// This kernel relocates the pulled bundle.
	out := mustRun(t, "check", ref, "--btf", hostBTF)
	if !strings.Contains(out, "exec_trace") || !strings.Contains(out, " ok ") || strings.Contains(out, "FAIL") {
		t.Errorf("check against this kernel:\n%s", out)
	}

	// A kernel without task_struct.real_parent fails it, by registry
	// reference and by directory, in a table and in JSON.
	for _, src := range []string{ref, exectraceDir} {
		out, err := run(t, "check", src, "--btf", broken)
		if !errors.Is(err, bundlecmd.ErrWouldFail) || !strings.Contains(err.Error(), "exec_trace") {
			t.Fatalf("check %s against the broken BTF = %v, want ErrWouldFail naming exec_trace\n%s", src, err, out)
		}
		t.Logf("check %s:\n%s", src, out)
		for _, want := range []string{"FAIL", "byte_off", "struct task_struct", "real_parent", "no field real_parent"} {
			if !strings.Contains(out, want) {
				t.Errorf("check %s table lacks %q:\n%s", src, want, out)
			}
		}
	}
	var res bundlecmd.CheckOutput
	out, err := run(t, "check", ref, "--btf", broken, "-o", "json")
	if !errors.Is(err, bundlecmd.ErrWouldFail) {
		t.Fatalf("check -o json = %v, want ErrWouldFail", err)
	}
	// The error is printed by the caller; stdout holds the JSON alone.
	if err := json.NewDecoder(bytes.NewReader([]byte(out))).Decode(&res); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if res.OK || !strings.HasPrefix(res.Digest, "sha256:") || len(res.Programs) != 1 || res.Programs[0].OK ||
		len(res.Programs[0].Problems) != 1 || res.Programs[0].Problems[0].Field != "real_parent" || res.Programs[0].Problems[0].Type != "struct task_struct" {
		t.Errorf("json = %+v", res)
	}

	// Usage errors.
	if _, err := run(t, "check", ref); err == nil {
		t.Error("check without --btf succeeded")
	}
	if _, err := run(t, "check", ref, "--btf", hostBTF, "-o", "yaml"); err == nil {
		t.Error("check -o yaml succeeded")
	}
	if _, err := run(t, "check", ref, "--btf", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("check with a missing BTF file succeeded")
	}
}
