package dataplane_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// kubeUID is a fresh Kubernetes-style UID.
func kubeUID() string {
	h := randHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// TestNewRefusesSharedRoot: the agent does not start on a pin root that is
// not its own, where its cleanup would delete other tools' pins.
func TestNewRefusesSharedRoot(t *testing.T) {
	e := newEnv(t)
	shared := e.root + "-shared"
	if err := os.MkdirAll(filepath.Join(shared, "cilium"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(shared) })
	tests := []struct {
		name, root, message string
	}{
		{name: "bpffs mount root", root: bpffs.BPFFSMount, message: "is a mount root"},
		{name: "directory holding cilium's pins", root: shared, message: "holds cilium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := e.opts
			opts.BPFFSRoot = tt.root
			d, err := dataplane.New(context.Background(), opts)
			if err == nil {
				_ = d.Close()
				t.Fatal("New accepted the root")
			}
			if !errors.Is(err, bpffs.ErrUnsafeRoot) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("want ErrUnsafeRoot with %q, got %v", tt.message, err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(shared, "cilium")); err != nil {
		t.Fatalf("foreign directory gone: %v", err)
	}
}

// TestCleanupSparesForeignDirectories: pins that appear under the root
// later (another tool, an operator by hand) survive the agent's removal of
// unrecorded pins; a directory named as a program UID that nothing records
// is removed as before.
func TestCleanupSparesForeignDirectories(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	stale := kubeUID()
	for _, n := range []string{"cilium", "tc", stale} {
		if err := os.MkdirAll(filepath.Join(e.root, n, "globals"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	d.Apply(ctx, nil)
	for _, n := range []string{"cilium", "tc"} {
		if _, err := os.Stat(filepath.Join(e.root, n, "globals")); err != nil {
			t.Errorf("foreign directory %s removed by cleanup: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(e.root, stale)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unrecorded program directory %s kept: %v", stale, err)
	}
}

// TestBPFFSRemounted: a bpffs unmounted under a running Dataplane is
// mounted again on the next apply, the program keeps running (same program
// and link) and its pins are back. The test owns a private bpffs mount.
func TestBPFFSRemounted(t *testing.T) {
	e := newEnv(t)
	mnt := t.TempDir()
	if _, err := bpffs.EnsureBPFFS(mnt); err != nil {
		privileged.SkipOrFail(t, "mount a private bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	root := filepath.Join(mnt, "bpfleet")
	d := e.open(t, func(o *dataplane.Options) { o.BPFFSRoot, o.BPFFSMount = root, mnt })
	uid := kubeUID()
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	before := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, before)
	link := bpffs.Layout{Root: root}.Link(types.UID(uid), kernelprog.XDPFilter, before.AttachPoint)
	if _, err := os.Stat(link); err != nil {
		t.Fatalf("link not pinned: %v", err)
	}

	if n := d.TakeBPFFSRemounts(); n != 0 {
		t.Fatalf("%d remounts reported before any", n)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	after := one(t, d.Apply(ctx, parsed(ds)), uid)
	if n := d.TakeBPFFSRemounts(); n != 1 {
		t.Errorf("%d remounts reported, want 1", n)
	}
	wantAttached(t, after)
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || int64(st.Type) != unix.BPF_FS_MAGIC {
		t.Fatalf("bpffs not mounted again: %#x, %v", st.Type, err)
	}
	if after.ID != before.ID || after.LinkID != before.LinkID {
		t.Errorf("program %d -> %d, link %d -> %d: want the running ones kept", before.ID, after.ID, before.LinkID, after.LinkID)
	}
	if _, err := os.Stat(link); err != nil {
		t.Errorf("link not pinned again: %v", err)
	}
}
