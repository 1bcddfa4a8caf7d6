package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestMountFilesystemsOnly runs the DaemonSet's init step in a private mount
// namespace where neither bpffs nor tracefs is mounted: it mounts both and
// exits 0, and a second run finds them mounted and changes nothing.
func TestMountFilesystemsOnly(t *testing.T) {
	privileged.RequireRoot(t)
	unshare := privileged.RequireCommand(t, "unshare")
	script := `set -e
umount /sys/fs/bpf 2>/dev/null || true
umount /sys/kernel/tracing 2>/dev/null || true
if mountpoint -q /sys/fs/bpf; then echo "bpffs still mounted"; exit 3; fi
"$0" --mount-filesystems-only
"$0" --mount-filesystems-only
stat -f -c %T /sys/fs/bpf
stat -f -c %T /sys/kernel/tracing
`
	// unshare -m gives the shell private mounts: nothing here reaches the host.
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), "BPFLEET_AGENT_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	if len(got) != 2 || got[0] != "bpf_fs" || got[1] != "tracefs" {
		t.Fatalf("filesystems after the init step: %q, want bpf_fs and tracefs", out)
	}
}
