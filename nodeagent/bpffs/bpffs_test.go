package bpffs_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
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
	a := []loader.Constant{{Name: "x", Value: "1"}, {Name: "y", Value: "2"}}
	b := []loader.Constant{{Name: "y", Value: "2"}, {Name: "x", Value: "1"}}
	for _, tc := range []struct {
		name string
		// same tells whether the two hashes must match.
		h1, h2 string
		same   bool
	}{
		{"constant order does not matter", bpffs.LoadHash("d", a), bpffs.LoadHash("d", b), true},
		{"digest matters", bpffs.LoadHash("d1", a), bpffs.LoadHash("d2", a), false},
		{"value matters", bpffs.LoadHash("d", a), bpffs.LoadHash("d", []loader.Constant{{Name: "x", Value: "3"}, {Name: "y", Value: "2"}}), false},
		{"no constants", bpffs.LoadHash("d", nil), bpffs.LoadHash("d", []loader.Constant{}), true},
		{"load keys matter", bpffs.LoadHash("d", a, "p/cgroup/egress"), bpffs.LoadHash("d", a, "p/cgroup/ingress"), false},
		{"load key order does not", bpffs.LoadHash("d", a, "k1", "k2"), bpffs.LoadHash("d", a, "k2", "k1"), true},
	} {
		if (tc.h1 == tc.h2) != tc.same {
			t.Errorf("%s: %s vs %s", tc.name, tc.h1, tc.h2)
		}
	}
}

// within tells whether path is dir or below it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// FuzzRecord feeds arbitrary bytes, as a record file of uid, to Store.Get:
// records are read back from disk, where anything may have been written.
// Get never panics, and a record it returns is uid's, and every pin path
// the Layout builds from it stays in uid's pin directory (a record naming
// a program "../../x" must not make the agent load, pin or remove pins of
// another BpfProgram, or anything else under bpffs).
func FuzzRecord(f *testing.F) {
	good, _ := json.Marshal(bpffs.Record{Version: bpffs.RecordVersion, UID: "u1", Name: "filter", Digest: "sha256:aa",
		Programs: map[string]bpffs.ProgramRecord{"xdp_filter": {Tag: "ffd79f99df73bdee", ID: 7}},
		Links:    []bpffs.LinkRecord{{Program: "xdp_filter", Point: "xdp/eth0"}}, Maps: []string{"deny", ".rodata"}})
	f.Add("u1", good)
	f.Add("u1", []byte(`{"version":1,"uid":"u1","programs":{"../../../other/progs/p":{"tag":"x"}}}`))
	f.Add("u1", []byte(`{"version":1,"uid":"u1","links":[{"program":"../p","point":"xdp/eth0"}]}`))
	f.Add("u1", []byte(`{"version":1,"uid":"..","name":"x"}`))
	f.Add("u1", []byte(`{"version":1,"uid":""}`))
	f.Add("u1", []byte(`{"version":2}`))
	f.Add("u1", []byte(`not json`))
	f.Fuzz(func(t *testing.T, uid string, data []byte) {
		dir := t.TempDir()
		s := bpffs.Store{Dir: dir}
		if uid == "" || uid == "." || uid == ".." || strings.ContainsAny(uid, "/\x00") {
			if _, ok, err := s.Get(types.UID(uid)); ok || err == nil {
				t.Fatalf("Get(%q) = ok %v, %v: want refused", uid, ok, err)
			}
			return
		}
		path := filepath.Join(dir, "programs", uid+".json")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return // a name the file system refuses
		}
		rec, ok, err := s.Get(types.UID(uid))
		if err != nil || !ok {
			return
		}
		if rec.UID != types.UID(uid) {
			t.Fatalf("Get(%q) returned the record of %q", uid, rec.UID)
		}
		l := bpffs.Layout{Root: "/sys/fs/bpf/bpfleet"}
		own := l.Dir(rec.UID)
		if filepath.Dir(own) != l.Root {
			t.Fatalf("pin directory %s is not directly under %s", own, l.Root)
		}
		for name := range rec.Programs {
			if p := l.Program(rec.UID, name); !within(filepath.Join(own, "progs"), p) || p == filepath.Join(own, "progs") {
				t.Fatalf("program %q pins at %s, outside %s/progs", name, p, own)
			}
		}
		for _, name := range rec.Maps {
			if p := l.Map(rec.UID, name); filepath.Dir(p) != filepath.Join(own, "maps") {
				t.Fatalf("map %q pins at %s, outside %s/maps", name, p, own)
			}
		}
		for _, lr := range rec.Links {
			if p := l.Link(rec.UID, lr.Program, lr.Point); filepath.Dir(p) != filepath.Join(own, "links") {
				t.Fatalf("link %q@%q pins at %s, outside %s/links", lr.Program, lr.Point, p, own)
			}
		}
	})
}

// FuzzParseLink feeds arbitrary link pin names (read back from bpffs, where
// anyone with access may create files) to ParseLink. It never panics; what
// it parses pins back under the same links directory, and a name that is
// not hashed round-trips to the same attach point.
func FuzzParseLink(f *testing.F) {
	l := bpffs.Layout{Root: "/sys/fs/bpf/bpfleet"}
	for _, point := range []string{"xdp/eth0", "uprobe//usr/bin/app:main", "cgroup/egress:/sys/fs/cgroup/a b", ""} {
		f.Add(filepath.Base(l.Link("u", "prog", point)))
	}
	f.Add("prog#0123456789abcdef0123456789abcdef")
	f.Add("no-at-sign")
	f.Add("p@%zz")
	f.Add("..@%2F..%2F..")
	f.Fuzz(func(t *testing.T, name string) {
		prog, point, err := bpffs.ParseLink(filepath.Join(l.Dir("u"), "links", name))
		if err != nil {
			return
		}
		pin := l.Link("u", prog, point)
		if filepath.Dir(pin) != filepath.Join(l.Dir("u"), "links") {
			t.Fatalf("%q parses to %q@%q, which pins at %s", name, prog, point, pin)
		}
		p2, pt2, err := bpffs.ParseLink(pin)
		if err == nil && (p2 != prog || pt2 != point) {
			t.Fatalf("%q: %q@%q pins as %s, which parses to %q@%q", name, prog, point, filepath.Base(pin), p2, pt2)
		}
	})
}
