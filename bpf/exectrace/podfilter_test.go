package exectrace

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/cgroupv2"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestPodFilter: with the pod filter on (as the agent sets it for a
// tracepoint block with pods), only execs in the cgroups listed in the
// filter map produce events; the others are dropped in the kernel.
func TestPodFilter(t *testing.T) {
	privileged.RequireTracefs(t)
	root := cgroupv2.Root(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	base := filepath.Join(root, "bpfleet-podfilter-"+hex.EncodeToString(b))
	selected, other := filepath.Join(base, "selected"), filepath.Join(base, "other")
	for _, d := range []string{selected, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = os.Remove(selected); _ = os.Remove(other); _ = os.Remove(base) })

	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	spec.Maps[EventsMap].MaxEntries = 8 << 20
	if err := spec.Variables[v1alpha1.PodFilterConstant].Set(uint8(1)); err != nil {
		t.Fatalf("set %s: %v", v1alpha1.PodFilterConstant, err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer coll.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(selected, &st); err != nil {
		t.Fatal(err)
	}
	if err := coll.Maps[v1alpha1.PodFilterMap].Put(st.Ino, uint8(1)); err != nil {
		t.Fatal(err)
	}
	tp, err := link.Tracepoint(TracepointGroup, TracepointName, coll.Programs[ProgramName], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	rd, err := ringbuf.NewReader(coll.Maps[EventsMap])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	run := func(dir string) uint32 {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command("true")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		return uint32(cmd.Process.Pid)
	}
	in, out := run(selected), run(other)
	got := map[uint32]int{}
	all := 0
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
		got[ev.PID]++
		all++
		if ev.CgroupID != st.Ino {
			t.Errorf("event from cgroup %d (%s, pid %d) passed the filter", ev.CgroupID, ev.Comm, ev.PID)
		}
	}
	if got[in] != 1 || got[out] != 0 {
		t.Fatalf("events: selected pid %d: %d, other pid %d: %d (all %d), want 1 and 0", in, got[in], out, got[out], all)
	}
}
