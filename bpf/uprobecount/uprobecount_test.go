package uprobecount

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// targetSource is a tiny program that calls bpfleet_probe_target argv[1] times.
const targetSource = `#include <stdlib.h>
__attribute__((noinline)) int bpfleet_probe_target(int n) { asm volatile(""); return n * 3 + 1; }
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 0, s = 0;
	for (int i = 0; i < n; i++) s += bpfleet_probe_target(i);
	return s == -1;
}
`

const targetSymbol = "bpfleet_probe_target"

// buildTarget compiles targetSource with the system C compiler.
func buildTarget(t *testing.T) string {
	t.Helper()
	cc := privileged.RequireCommand(t, "cc")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "target.c"), filepath.Join(dir, "target")
	if err := os.WriteFile(src, []byte(targetSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v: %s", err, out)
	}
	return bin
}

func TestUprobeCountsCalls(t *testing.T) {
	privileged.RequireTracefs(t)
	bin := buildTarget(t)
	tests := []struct {
		name  string
		tgid  uint32 // target_tgid constant (0: every process)
		calls int    // calls the target makes
		want  uint64 // calls counted
	}{
		{name: "every process", tgid: 0, calls: 1000, want: 1000},
		{name: "restricted to another process", tgid: uint32(os.Getpid()), calls: 100, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Spec()
			if err != nil {
				t.Fatal(err)
			}
			if err := spec.Variables[TargetTGIDConstant].Set(tt.tgid); err != nil {
				t.Fatal(err)
			}
			var objs uprobecountObjects
			if err := spec.LoadAndAssign(&objs, nil); err != nil {
				t.Fatalf("load: %v", err)
			}
			defer objs.Close()
			ex, err := link.OpenExecutable(bin)
			if err != nil {
				t.Fatal(err)
			}
			up, err := ex.Uprobe(targetSymbol, objs.UprobeCount, nil)
			if err != nil {
				t.Fatalf("attach uprobe to %s: %v", targetSymbol, err)
			}
			defer up.Close()

			if out, err := exec.Command(bin, strconv.Itoa(tt.calls)).CombinedOutput(); err != nil {
				t.Fatalf("target: %v: %s", err, out)
			}
			var perCPU []uint64
			if err := objs.Calls.Lookup(uint32(0), &perCPU); err != nil {
				t.Fatal(err)
			}
			var got uint64
			for _, v := range perCPU {
				got += v
			}
			if got != tt.want {
				t.Fatalf("counted %d calls, want %d", got, tt.want)
			}
		})
	}
}
