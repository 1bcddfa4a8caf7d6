package bpffs

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestEnsureMount mounts a bpffs and a tracefs on fresh directories (as the
// agent does on a node without them) and leaves mounted ones alone.
func TestEnsureMount(t *testing.T) {
	privileged.RequireRoot(t)
	for _, tc := range []struct {
		fstype string
		magic  int64
	}{
		{"bpf", unix.BPF_FS_MAGIC},
		{"tracefs", unix.TRACEFS_MAGIC},
	} {
		t.Run(tc.fstype, func(t *testing.T) {
			dir := t.TempDir()
			if err := ensureMount(dir, tc.fstype, tc.magic); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err != nil || int64(st.Type) != tc.magic {
				t.Fatalf("not a %s after mount: type %#x, %v", tc.fstype, st.Type, err)
			}
			// Already mounted: a no-op, not a second mount on top.
			if err := ensureMount(dir, tc.fstype, tc.magic); err != nil {
				t.Fatal(err)
			}
			if err := unix.Unmount(dir, 0); err != nil {
				t.Fatal(err)
			}
			if err := unix.Statfs(dir, &st); err != nil || int64(st.Type) == tc.magic {
				t.Fatalf("mounted twice: still %#x after one unmount", st.Type)
			}
		})
	}
}
