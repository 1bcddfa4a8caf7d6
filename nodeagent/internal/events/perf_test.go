package events

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n"))
}

// TestPerfEventArrayOutput: a program in the real kernel (XDP, run with
// BPF_PROG_RUN) writes records to a perf event array with
// bpf_perf_event_output; the agent's perf reader decodes each from its BTF
// type into a JSON line on Out and to stream consumers, like a ring buffer's.
func TestPerfEventArrayOutput(t *testing.T) {
	privileged.RequireRoot(t)
	events, err := ebpf.NewMap(&ebpf.MapSpec{Name: "perf_events", Type: ebpf.PerfEventArray})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	const magic = 0xb0f1ee7
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.StoreImm(asm.R10, -8, 7, asm.Word),     // seq
			asm.StoreImm(asm.R10, -4, magic, asm.Word), // magic
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.LoadMapPtr(asm.R2, events.FD()),
			asm.LoadImm(asm.R3, 0xffffffff, asm.DWord), // BPF_F_CURRENT_CPU
			asm.Mov.Reg(asm.R4, asm.R10),
			asm.Add.Imm(asm.R4, -8),
			asm.Mov.Imm(asm.R5, 8),
			asm.FnPerfEventOutput.Call(),
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()

	u32 := &btf.Int{Name: "__u32", Size: 4}
	d, err := NewDecoder(&btf.Struct{Name: "perf_rec", Size: 8, Members: []btf.Member{
		{Name: "seq", Type: u32, Offset: 0},
		{Name: "magic", Type: u32, Offset: 32},
	}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSource(events)
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	s := &Streamer{Node: "n", Out: out}
	sub := s.Subscribe("perf", "", "", 0)
	defer s.End(sub, nil)
	w := &writer{s: s, program: "perf", output: "perf_events", full: d, kept: d, bucket: newBucket(DefaultRateLimit)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.loop(context.Background(), src)
	}()
	const runs = 50
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64), Repeat: runs}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (len(sub.Lines) < runs || len(out.lines()) < runs) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_ = src.Close()
	<-done
	lines := out.lines()
	if len(lines) != runs || len(sub.Lines) != runs {
		t.Fatalf("%d lines on Out and %d to the consumer, want %d each", len(lines), len(sub.Lines), runs)
	}
	var ev struct {
		Schema, Output string
		Host           bool
		Record         struct{ Seq, Magic uint32 }
	}
	if err := json.Unmarshal(lines[0], &ev); err != nil {
		t.Fatalf("line %q: %v", lines[0], err)
	}
	if ev.Schema != Schema || ev.Output != "perf_events" || !ev.Host || ev.Record.Seq != 7 || ev.Record.Magic != magic {
		t.Errorf("line %s, want schema %s, output perf_events, host, seq 7, magic %d", lines[0], Schema, magic)
	}
}
