package exectrace

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/bpfleet/bpfleet/test/support/cgroupv2"
	"github.com/bpfleet/bpfleet/test/support/privileged"
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
		CgroupID: cgroupv2.OwnID(t),
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
