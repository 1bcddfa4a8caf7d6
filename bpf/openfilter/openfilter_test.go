package openfilter

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/bpfleet/bpfleet/test/support/cgroupv2"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// filter is a loaded and attached open-filter.
type filter struct {
	objs openfilterObjects
	rd   *ringbuf.Reader
}

func start(tb testing.TB, consts map[string]any, prefixes map[string]uint32, comms []string) *filter {
	tb.Helper()
	return startWithRing(tb, 0, consts, prefixes, comms)
}

// startWithRing is start with a ring buffer of ringBytes (0: as compiled).
func startWithRing(tb testing.TB, ringBytes uint32, consts map[string]any, prefixes map[string]uint32, comms []string) *filter {
	tb.Helper()
	privileged.RequireTracefs(tb)
	spec, err := Spec()
	if err != nil {
		tb.Fatal(err)
	}
	if ringBytes != 0 {
		spec.Maps[EventsMap].MaxEntries = ringBytes
	}
	for name, v := range consts {
		if err := spec.Variables[name].Set(v); err != nil {
			tb.Fatalf("set %s: %v", name, err)
		}
	}
	f := &filter{}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { _ = f.objs.Close() })
	for p, id := range prefixes {
		k, err := PrefixKey(p)
		if err != nil {
			tb.Fatal(err)
		}
		v, _ := PrefixValue(id)
		if err := f.objs.PathPrefixes.Update(k, v, ebpf.UpdateAny); err != nil {
			tb.Fatalf("add prefix: %v", err)
		}
	}
	for _, c := range comms {
		k, err := CommKey(c)
		if err != nil {
			tb.Fatal(err)
		}
		if err := f.objs.Comms.Update(k, uint8(1), ebpf.UpdateAny); err != nil {
			tb.Fatalf("add comm: %v", err)
		}
	}
	tp, err := link.Tracepoint(TracepointGroup, TracepointName, f.objs.OpenFilter, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tp.Close() })
	if f.rd, err = ringbuf.NewReader(f.objs.OpenEvents); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.rd.Close() })
	return f
}

// drain reads records until none arrives for a while, for at most two
// seconds (with send_all, the rest of the machine keeps opening files).
func (f *filter) drain(tb testing.TB) []Event {
	tb.Helper()
	var out []Event
	end := time.Now().Add(2 * time.Second)
	for {
		quiet := time.Now().Add(300 * time.Millisecond)
		if quiet.After(end) {
			quiet = end
		}
		f.rd.SetDeadline(quiet)
		rec, err := f.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		ev, err := ParseEvent(rec.RawSample)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, ev)
	}
}

func (f *filter) perCPU(tb testing.TB, m *ebpf.Map, key uint32) uint64 {
	tb.Helper()
	var vals []uint64
	if err := m.Lookup(key, &vals); err != nil {
		tb.Fatal(err)
	}
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum
}

func openClose(tb testing.TB, path string) {
	tb.Helper()
	fd, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	_ = fd.Close()
}

// shortTempDir is a temp dir whose path fits a prefix (t.TempDir's may not).
func shortTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "bpfl-of-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestInKernelFilter(t *testing.T) {
	const (
		ownOpensIn  = 20 // opens by this process under the prefix
		ownOpensOut = 30 // opens by this process elsewhere
		catRuns     = 2  // `cat` processes opening a file under the prefix
		prefixID    = 3
	)
	tests := []struct {
		name     string
		consts   map[string]any // volatile consts set before load
		comms    []string       // entries of the comms map
		wantHits int            // calls that must match
	}{
		{name: "prefix only", wantHits: ownOpensIn + catRuns},
		{name: "prefix and comm", consts: map[string]any{MatchCommConstant: true}, comms: []string{"cat"}, wantHits: catRuns},
		{name: "prefix and our cgroup", consts: map[string]any{CgroupIDConstant: cgroupv2.OwnID(t)}, wantHits: ownOpensIn + catRuns},
		{name: "prefix and another cgroup", consts: map[string]any{CgroupIDConstant: ^uint64(0)}, wantHits: 0},
	}
	cat := privileged.RequireCommand(t, "cat")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortTempDir(t)
			in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
			for _, d := range []string{in, out} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			prefix := in + "/"
			if len(prefix) > MaxPrefixLen {
				t.Fatalf("temp dir %q too long for a prefix", prefix)
			}
			f := start(t, tt.consts, map[string]uint32{prefix: prefixID}, tt.comms)

			for range ownOpensIn {
				openClose(t, filepath.Join(in, "f"))
			}
			for range ownOpensOut {
				openClose(t, filepath.Join(out, "f"))
			}
			openClose(t, in) // the directory itself: no trailing slash, no match
			for range catRuns {
				if out, err := exec.Command(cat, filepath.Join(in, "f")).CombinedOutput(); err != nil {
					t.Fatalf("cat: %v: %s", err, out)
				}
			}

			events := f.drain(t)
			if len(events) != tt.wantHits {
				t.Errorf("%d ring-buffer records, want %d (only matches may reach user space): %+v", len(events), tt.wantHits, events)
			}
			for _, ev := range events {
				if !strings.HasPrefix(ev.Path, prefix) || ev.PrefixID != prefixID {
					t.Errorf("unexpected record %+v", ev)
				}
			}
			if got := f.perCPU(t, f.objs.PrefixHits, prefixID); got != uint64(tt.wantHits) {
				t.Errorf("prefix_hits[%d] = %d, want %d", prefixID, got, tt.wantHits)
			}
			if sent := f.perCPU(t, f.objs.OpenStats, StatSent); sent != uint64(tt.wantHits) {
				t.Errorf("open_stats[sent] = %d, want %d", sent, tt.wantHits)
			}
			if seen := f.perCPU(t, f.objs.OpenStats, StatSeen); seen < ownOpensIn+ownOpensOut {
				t.Errorf("open_stats[seen] = %d, want at least %d", seen, ownOpensIn+ownOpensOut)
			}
		})
	}
}

func TestSendAllSendsUnfiltered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "unmatched")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Every open on the machine is sent: room for a busy machine.
	f := startWithRing(t, 16<<20, map[string]any{SendAllConstant: true}, nil, nil)
	const opens = 5
	for range opens {
		openClose(t, path)
	}
	var mine int
	for _, ev := range f.drain(t) {
		if ev.Path == path {
			mine++
			if ev.PrefixID != SentUnfiltered || ev.PID != uint32(os.Getpid()) {
				t.Errorf("record %+v", ev)
			}
		}
	}
	if mine != opens {
		t.Fatalf("%d records for %s, want %d", mine, path, opens)
	}
}

func TestEncoders(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		wantKey string // hex, first 8 bytes
		wantErr bool
	}{
		{name: "etc", prefix: "/etc/", wantKey: "280000002f657463"},
		{name: "empty", prefix: "", wantErr: true},
		{name: "too long", prefix: "/" + strings.Repeat("a", MaxPrefixLen), wantErr: true},
		{name: "nul", prefix: "/a\x00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, v, err := PrefixMapEntry(tt.prefix, 1)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidPrefix) {
					t.Fatalf("err = %v, want ErrInvalidPrefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k[:16] != tt.wantKey || len(k) != 2*PrefixKeySize || v != "01000000" {
				t.Fatalf("key %s value %s", k, v)
			}
		})
	}
	if _, err := CommKey("sixteen-bytes-xx"); !errors.Is(err, ErrInvalidComm) {
		t.Errorf("16-byte comm: %v", err)
	}
}
