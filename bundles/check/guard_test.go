package check_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfleet/bpfleet/bundles/check"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// guardSource reads task->real_parent->tgid twice: once behind
// bpf_core_field_exists, once without.
const guardSource = `#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

SEC("tracepoint/sched/sched_process_exec")
int guarded(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	if (!bpf_core_field_exists(task->real_parent))
		return 0;
	return BPF_CORE_READ(task, real_parent, tgid);
}

SEC("tracepoint/sched/sched_process_exec")
int unguarded(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	return BPF_CORE_READ(task, real_parent, tgid);
}

char LICENSE[] SEC("license") = "GPL";
`

// TestExistenceCheckGuardsAPoisonedAccess compiles a program that tests
// bpf_core_field_exists before reading a field: on a target without the
// field the read is reported, as guarded, and the program passes; the same
// read unguarded fails.
func TestExistenceCheckGuardsAPoisonedAccess(t *testing.T) {
	clang := privileged.RequireCommand(t, "clang")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "guard.c"), []byte(guardSource), 0o644); err != nil {
		t.Fatal(err)
	}
	include, err := filepath.Abs(filepath.Join("..", "..", "bpf", "include"))
	if err != nil {
		t.Fatal(err)
	}
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	cmd := exec.Command(clang, "-O2", "-g", "-target", "bpfel", "-D__TARGET_ARCH_"+map[string]string{"amd64": "x86", "arm64": "arm64"}[runtime.GOARCH],
		"-I"+include, "-I/usr/include/"+arch+"-linux-gnu", "-c", "guard.c", "-o", "guard.o")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, out)
	}
	obj, err := os.ReadFile(filepath.Join(dir, "guard.o"))
	if err != nil {
		t.Fatal(err)
	}
	in := check.Input{
		Programs: []check.Program{{Name: "guarded", Object: "guard.o"}, {Name: "unguarded", Object: "guard.o"}},
		Objects:  map[string][]byte{"guard.o": obj},
	}
	local, err := btf.LoadSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	target := targetFrom(t, local, map[string]func(*btf.Struct){"task_struct": rename("real_parent", "parent_task")})
	rep, err := check.Check(in, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep.Programs)
	tests := []struct {
		// program is the program's name.
		program string
		// wantOK is whether it passes.
		wantOK bool
		// wantGuarded is whether its real_parent problem is guarded.
		wantGuarded bool
	}{
		{program: "guarded", wantOK: true, wantGuarded: true},
		{program: "unguarded", wantOK: false, wantGuarded: false},
	}
	for i, tt := range tests {
		p := rep.Programs[i]
		if p.Program != tt.program || p.OK != tt.wantOK {
			t.Errorf("result %+v, want %s ok=%v", p, tt.program, tt.wantOK)
			continue
		}
		found := false
		for _, pr := range p.Problems {
			if pr.Field == "real_parent" && pr.Kind == "byte_off" {
				found = true
				if pr.Guarded != tt.wantGuarded {
					t.Errorf("%s: problem %+v, want guarded=%v", tt.program, pr, tt.wantGuarded)
				}
			}
		}
		if !found {
			t.Errorf("%s: no byte_off problem on real_parent in %+v", tt.program, p.Problems)
		}
	}
	if failed := rep.Failed(); len(failed) != 1 || failed[0].Program != "unguarded" {
		t.Errorf("failed %+v, want unguarded only", failed)
	}
}
