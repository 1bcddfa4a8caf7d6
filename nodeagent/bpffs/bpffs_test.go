package bpffs_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
)

func TestLinkPinNames(t *testing.T) {
	l := bpffs.Layout{Root: "/sys/fs/bpf/x"}
	for _, point := range []string{
		"xdp/eth0",
		"uprobe//tmp/go-build1/b001/dataplane.test:+0x4432c0",
		"cgroup/egress:/sys/fs/cgroup/unified/a b@c%d",
		"tracepoint/syscalls/sys_enter_getppid",
	} {
		pin := l.Link("uid-1", "prog_a", point)
		if filepath.Dir(pin) != "/sys/fs/bpf/x/uid-1/links" {
			t.Fatalf("%s: pin %s outside the links directory", point, pin)
		}
		base := filepath.Base(pin)
		if strings.ContainsAny(strings.TrimPrefix(base, "prog_a@"), "/.:+ @") {
			t.Errorf("pin name %s keeps characters bpffs may refuse", base)
		}
		prog, got, err := bpffs.ParseLink(pin)
		if err != nil || prog != "prog_a" || got != point {
			t.Errorf("ParseLink(%s) = %s, %s, %v; want prog_a, %s", pin, prog, got, err, point)
		}
	}
	// A deep uprobe path does not fit a file name: hashed, and only the record resolves it.
	deep := "uprobe//proc/1/root/" + strings.Repeat("run/containerd/rootfs/", 12) + "usr/bin/app:main"
	pin := l.Link("uid-1", "prog_a", deep)
	if len(filepath.Base(pin)) > 255 || pin != l.Link("uid-1", "prog_a", deep) || pin == l.Link("uid-1", "prog_a", deep+"x") {
		t.Fatalf("hashed pin name %s not short, stable and distinct", filepath.Base(pin))
	}
	if prog, _, err := bpffs.ParseLink(pin); !errors.Is(err, bpffs.ErrHashedPin) || prog != "prog_a" {
		t.Fatalf("ParseLink(hashed) = %s, %v", prog, err)
	}
	if got := bpffs.MapName(l.Map("u", ".rodata")); got != ".rodata" {
		t.Errorf("MapName round trip: %q", got)
	}
}

func TestRecordStore(t *testing.T) {
	s := bpffs.Store{Dir: t.TempDir()}
	if _, ok, err := s.Get("nope"); ok || err != nil {
		t.Fatalf("missing record: ok %v err %v", ok, err)
	}
	rec := bpffs.Record{UID: "u1", Name: "filter", Digest: "sha256:aa", LoadHash: "h", Object: "o",
		Programs:   map[string]bpffs.ProgramRecord{"xdp_filter": {Tag: "ffd79f99df73bdee", ID: 7}},
		MapEntries: []bpffs.EntryRecord{{Map: "deny", Key: "0f27", Value: "01"}}, MapEntriesHash: "m"}
	if err := s.Put(rec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get("u1")
	rec.Version = bpffs.RecordVersion
	if !ok || err != nil || !reflect.DeepEqual(got, rec) {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	if uids, err := s.List(); err != nil || len(uids) != 1 || uids[0] != "u1" {
		t.Fatalf("List = %v, %v", uids, err)
	}
	if err := s.Delete("u1"); err != nil {
		t.Fatal(err)
	}
	if uids, _ := s.List(); len(uids) != 0 {
		t.Fatalf("List after delete = %v", uids)
	}
	n := bpffs.Node{BootID: "b", KernelRelease: "6.18"}
	if err := s.PutNode(n); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Node(); !ok || err != nil || got != n {
		t.Fatalf("Node = %+v %v %v", got, ok, err)
	}
}

func TestLoadHash(t *testing.T) {
	a := []v1alpha1.Constant{{Name: "x", Value: "1"}, {Name: "y", Value: "2"}}
	b := []v1alpha1.Constant{{Name: "y", Value: "2"}, {Name: "x", Value: "1"}}
	for _, tc := range []struct {
		name string
		// same tells whether the two hashes must match.
		h1, h2 string
		same   bool
	}{
		{"constant order does not matter", bpffs.LoadHash("d", a), bpffs.LoadHash("d", b), true},
		{"digest matters", bpffs.LoadHash("d1", a), bpffs.LoadHash("d2", a), false},
		{"value matters", bpffs.LoadHash("d", a), bpffs.LoadHash("d", []v1alpha1.Constant{{Name: "x", Value: "3"}, {Name: "y", Value: "2"}}), false},
		{"no constants", bpffs.LoadHash("d", nil), bpffs.LoadHash("d", []v1alpha1.Constant{}), true},
		{"load keys matter", bpffs.LoadHash("d", a, "p/cgroup/egress"), bpffs.LoadHash("d", a, "p/cgroup/ingress"), false},
		{"load key order does not", bpffs.LoadHash("d", a, "k1", "k2"), bpffs.LoadHash("d", a, "k2", "k1"), true},
	} {
		if (tc.h1 == tc.h2) != tc.same {
			t.Errorf("%s: %s vs %s", tc.name, tc.h1, tc.h2)
		}
	}
}
