// Package leakcheck is the TestMain of the agent's kernel-facing packages:
// it runs the tests, then fails the package when a goroutine (goleak) or an
// eBPF file descriptor (a program, map, link or BTF object the tests
// opened and never closed) is left behind, as cilium/ebpf's own test main
// does for its file descriptors. Pins are not descriptors: a test that pins
// cleans its pins up itself.
package leakcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Main runs m and exits, non-zero when a test failed or something leaked.
func Main(m *testing.M, opts ...goleak.Option) {
	before := bpfFDs()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines left behind: %v\n", err)
			code = 1
		}
	}
	if code == 0 {
		if leaked := leakedFDs(before); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "leakcheck: eBPF file descriptors left open: %s\n", strings.Join(leaked, ", "))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedFDs are the eBPF descriptors open now that were not in before. A
// descriptor closed by a finalizer or a goroutine that just ended gets a
// moment to go.
func leakedFDs(before map[string]string) []string {
	var leaked []string
	for try := 0; try < 20; try++ {
		leaked = leaked[:0]
		for fd, target := range bpfFDs() {
			if before[fd] != target {
				leaked = append(leaked, fmt.Sprintf("fd %s (%s)", fd, target))
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	sort.Strings(leaked)
	return leaked
}

// bpfFDs maps this process's open eBPF descriptors to what they are
// (anon_inode:bpf-prog, bpf-map, bpf_link, btf, ...).
func bpfFDs() map[string]string {
	out := map[string]string{}
	dir := "/proc/self/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && (strings.HasPrefix(target, "anon_inode:bpf") || target == "anon_inode:btf") {
			out[e.Name()] = target
		}
	}
	return out
}
