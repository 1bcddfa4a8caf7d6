package exectrace

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/bpfleet/bpfleet/test/privileged"
)

func TestExecProducesOneEvent(t *testing.T) {
	privileged.RequireTracefs(t)
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	// Room for the execs of a busy machine (parallel builds) before ours.
	spec.Maps[EventsMap].MaxEntries = 8 << 20
	var objs exectraceObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
	defer objs.Close()
	tp, err := link.Tracepoint(TracepointGroup, TracepointName, objs.ExecTrace, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	rd, err := ringbuf.NewReader(objs.ExecEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)

	// Other processes exec too: read until the deadline, keep ours.
	var mine []Event
	rd.SetDeadline(time.Now().Add(time.Second))
	for {
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ev, err := ParseEvent(rec.RawSample)
		if err != nil {
			t.Fatal(err)
		}
		if ev.PID == pid {
			mine = append(mine, ev)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("%d events for pid %d, want 1: %+v", len(mine), pid, mine)
	}
	ev := mine[0]
	want := Event{
		CgroupID: ownCgroupID(t),
		PID:      pid,
		PPID:     uint32(os.Getpid()),
		UID:      0,
		GID:      0,
		Comm:     "true",
		Filename: bin,
	}
	if ev != want {
		t.Fatalf("event %+v, want %+v", ev, want)
	}
}

func TestParseEventShort(t *testing.T) {
	if _, err := ParseEvent(make([]byte, EventSize-1)); !errors.Is(err, ErrShortEvent) {
		t.Fatalf("err = %v", err)
	}
}

// cgroup2Root returns where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts).
func cgroup2Root(tb testing.TB) string {
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

// ownCgroupID returns the cgroup v2 id (directory inode) of this process.
func ownCgroupID(tb testing.TB) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(cgroup2Root(tb), path), &st); err != nil {
				tb.Fatal(err)
			}
			return st.Ino
		}
	}
	tb.Fatal("no cgroup v2 line in /proc/self/cgroup")
	return 0
}
