// Package cgroupv2 finds the cgroup v2 hierarchy and this process's cgroup,
// for tests of cgroup-aware eBPF programs.
package cgroupv2

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// Root returns where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on hybrid hosts); without one the test skips, or
// fails under CI=true.
func Root(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if fields := strings.Fields(pre); ok && len(fields) > 4 && strings.HasPrefix(post, "cgroup2 ") {
			return fields[4]
		}
	}
	privileged.SkipOrFail(tb, "no cgroup v2 hierarchy mounted")
	return ""
}

// OwnID returns the cgroup v2 id (the directory's inode) of this process.
func OwnID(tb testing.TB) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(Root(tb), path), &st); err != nil {
				tb.Fatal(err)
			}
			return st.Ino
		}
	}
	tb.Fatal("no cgroup v2 line in /proc/self/cgroup")
	return 0
}
