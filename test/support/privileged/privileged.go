// Package privileged gates tests that need root, a kernel feature or a mounted
// filesystem. Locally such a test skips with the reason; under CI=true it
// fails instead, so a CI run can never pass by skipping the kernel.
package privileged

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// InCI tells whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips the test locally and fails it under CI.
func SkipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		tb.Fatalf("CI=true, so this test must run: %s", msg)
	}
	tb.Skip(msg)
}

// RequireRoot needs euid 0 (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN and friends).
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(tb, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireBPFFS needs root and a bpffs at /sys/fs/bpf.
func RequireBPFFS(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb)
	if !isFS("/sys/fs/bpf", unix.BPF_FS_MAGIC) {
		SkipOrFail(tb, "bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)")
	}
}

// RequireTracefs needs root and tracefs at /sys/kernel/tracing.
func RequireTracefs(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb)
	if !isFS("/sys/kernel/tracing", unix.TRACEFS_MAGIC) {
		SkipOrFail(tb, "tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs tracefs /sys/kernel/tracing)")
	}
}

// RequireCommand needs an executable on PATH and returns its path.
func RequireCommand(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(tb, "needs %s on PATH", name)
	}
	return path
}

// RequireFeature runs probe (typically a cilium/ebpf features.HaveX call) and
// skips or fails when the kernel lacks the feature. Any other error fails.
func RequireFeature(tb testing.TB, name string, probe func() error, notSupported error) {
	tb.Helper()
	err := probe()
	switch {
	case err == nil:
	case notSupported != nil && errors.Is(err, notSupported):
		SkipOrFail(tb, "kernel lacks %s: %v", name, err)
	default:
		tb.Fatalf("probe %s: %v", name, err)
	}
}

func isFS(path string, magic int64) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return int64(st.Type) == magic
}
