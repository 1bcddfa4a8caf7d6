package bpffs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func TestIsUID(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"0b7c3f1e-8d2a-4c5b-9e6f-1a2b3c4d5e6f", true},
		{"0B7C3F1E-8D2A-4C5B-9E6F-1A2B3C4D5E6F", true},
		{"tc", false},
		{"cilium", false},
		{"globals", false},
		{"0b7c3f1e8d2a4c5b9e6f1a2b3c4d5e6f", false},       // no dashes
		{"0b7c3f1e-8d2a-4c5b-9e6f-1a2b3c4d5e6", false},    // short
		{"0b7c3f1e-8d2a-4c5b-9e6f-1a2b3c4d5e6g", false},   // not hex
		{"{0b7c3f1e-8d2a-4c5b-9e6f-1a2b3c4d5e6f}", false}, // braces
		{"0b7c3f1e-8d2a-4c5b-9e6f_1a2b3c4d5e6f", false},   // dash misplaced
	}
	for _, tt := range tests {
		if got := bpffs.IsUID(tt.name); got != tt.want {
			t.Errorf("IsUID(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

const uid = "0b7c3f1e-8d2a-4c5b-9e6f-1a2b3c4d5e6f"

// privateBPFFS mounts a fresh bpffs on a temporary directory, unmounted at
// cleanup: tests never touch /sys/fs/bpf's own mount.
func privateBPFFS(t *testing.T) string {
	t.Helper()
	privileged.RequireRoot(t)
	dir := t.TempDir()
	if _, err := bpffs.EnsureBPFFS(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestCheckRoot: a pin root that is a bpffs mount root, or that holds what
// bpfleet did not make, is refused; bpfleet's own is accepted.
func TestCheckRoot(t *testing.T) {
	mnt := privateBPFFS(t)
	mkdirs := func(root string, names ...string) string {
		for _, n := range names {
			if err := os.MkdirAll(filepath.Join(root, n), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	tests := []struct {
		name string
		root string
		// known names directories the node's records know.
		known []string
		// refused is a fragment of the error; "" means accepted.
		refused string
	}{
		{name: "missing", root: filepath.Join(mnt, "absent")},
		{name: "empty", root: mkdirs(filepath.Join(mnt, "empty"), "")},
		{name: "program directories", root: mkdirs(filepath.Join(mnt, "own"), uid, "11111111-2222-3333-4444-555555555555")},
		{name: "recorded directory", root: mkdirs(filepath.Join(mnt, "rec"), "readopt-1"), known: []string{"readopt-1"}},
		{name: "private mount root", root: mnt, refused: "is a mount root"},
		{name: "the node's bpffs", root: bpffs.BPFFSMount, refused: "is a mount root"},
		{name: "cilium's directory", root: mkdirs(filepath.Join(mnt, "shared"), uid, "cilium"), refused: "holds cilium"},
		{name: "tc globals", root: mkdirs(filepath.Join(mnt, "tc"), "globals"), refused: "holds globals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root == bpffs.BPFFSMount {
				privileged.RequireBPFFS(t)
			}
			known := func(u types.UID) bool {
				for _, k := range tt.known {
					if string(u) == k {
						return true
					}
				}
				return false
			}
			err := bpffs.Layout{Root: tt.root}.Check(known)
			switch {
			case tt.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.refused == "":
			case !errors.Is(err, bpffs.ErrUnsafeRoot) || !strings.Contains(err.Error(), tt.refused):
				t.Fatalf("want ErrUnsafeRoot with %q, got %v", tt.refused, err)
			}
		})
	}
}

// TestUIDsListOnlyProgramDirectories: what the agent may remove as
// unrecorded pins is only ever a directory named as a Kubernetes UID.
func TestUIDsListOnlyProgramDirectories(t *testing.T) {
	root := filepath.Join(privateBPFFS(t), "bpfleet")
	for _, n := range []string{uid, "cilium", "tc"} {
		if err := os.MkdirAll(filepath.Join(root, n), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	got, err := bpffs.Layout{Root: root}.UIDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != uid {
		t.Fatalf("UIDs = %v, want only %s", got, uid)
	}
}

// TestEnsureBPFFSRemounts: a bpffs that went away is mounted again, and
// the caller is told so.
func TestEnsureBPFFSRemounts(t *testing.T) {
	dir := privateBPFFS(t)
	if mounted, err := bpffs.EnsureBPFFS(dir); err != nil || mounted {
		t.Fatalf("mounted bpffs: EnsureBPFFS = %v, %v; want false, nil", mounted, err)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if mounted, err := bpffs.EnsureBPFFS(dir); err != nil || !mounted {
		t.Fatalf("unmounted bpffs: EnsureBPFFS = %v, %v; want true, nil", mounted, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || int64(st.Type) != unix.BPF_FS_MAGIC {
		t.Fatalf("not a bpffs after EnsureBPFFS: %#x, %v", st.Type, err)
	}
}
