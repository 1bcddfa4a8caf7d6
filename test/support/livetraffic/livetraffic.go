//go:build linux

// Package livetraffic is an in-kernel traffic source for tests and
// benchmarks, and a UDP sink that counts what arrives. BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES runs an XDP_TX
// program on one end of a veth pair: every frame leaves that end through the
// kernel's XDP transmit path and reaches the peer as received traffic, with
// no socket and no user-space packet loop between sender and wire.
//
// The peer must be able to take XDP frames: an XDP program attached to it in
// native mode, or GRO enabled on it.
package livetraffic

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// xdpMd is struct xdp_md, the context of an XDP BPF_PROG_RUN.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Source sends frames out of one interface of the network namespace it was
// opened in. Send must run in that namespace too: the kernel resolves the
// interface index in the caller's namespace.
//
// The XDP_TX program counts the frames it bounces in a map, so the number
// sent is the kernel's count: BPF_PROG_RUN interrupted by a signal is run
// again from the start by cilium/ebpf, which sends part of a burst twice.
type Source struct {
	ifindex  int
	sent     *ebpf.Map
	returned *ebpf.Map
	tx       *ebpf.Program
	pass     *ebpf.Program
	back     *ebpf.Program
	hook     link.Link
}

// Open prepares ifname for sending. It attaches an XDP_PASS program to
// ifname in native mode, which live-frame XDP_TX needs on the sending
// interface; Close removes it.
func Open(ifname string) (*Source, error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("find source interface: %w", err)
	}
	s := &Source{ifindex: iface.Index}
	if err := s.load(); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.hook, err = link.AttachXDP(link.XDPOptions{Program: s.pass, Interface: iface.Index, Flags: link.XDPDriverMode})
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("attach pass program to %s: %w", ifname, err)
	}
	return s, nil
}

// load creates the counter maps and the programs.
func (s *Source) load() error {
	var err error
	if s.sent, s.tx, err = countingProgram("bpfl_live_sent", 3 /* XDP_TX */); err != nil {
		return fmt.Errorf("load transmit program: %w", err)
	}
	if s.returned, s.back, err = countingProgram("bpfl_live_back", 1 /* XDP_DROP */); err != nil {
		return fmt.Errorf("load return counter program: %w", err)
	}
	s.pass, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "bpfl_live_pass",
		Type:         ebpf.XDP,
		License:      "Dual BSD/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
	})
	if err != nil {
		return fmt.Errorf("load pass program: %w", err)
	}
	return nil
}

// countingProgram creates a one-counter array map and an XDP program that
// adds one to it for every frame and returns verdict.
func countingProgram(name string, verdict int32) (*ebpf.Map, *ebpf.Program, error) {
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("create counter: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    name,
		Type:    ebpf.XDP,
		License: "Dual BSD/GPL",
		Instructions: asm.Instructions{
			// counter[0] += 1, then the verdict.
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, counter.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "verdict"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, verdict).WithSymbol("verdict"),
			asm.Return(),
		},
	})
	if err != nil {
		_ = counter.Close()
		return nil, nil, err
	}
	return counter, prog, nil
}

// CountReturns makes the source's interface count and drop the frames that
// come back to it (a peer that bounces frames with XDP_TX) instead of
// passing them to the kernel's stack: [Source.Returned] counts them, and
// their cost on the way back is the least XDP can make it.
func (s *Source) CountReturns() error {
	if err := s.hook.Update(s.back); err != nil {
		return fmt.Errorf("attach return counter: %w", err)
	}
	return nil
}

// Returned is how many frames came back to the source's interface since
// [Source.CountReturns].
func (s *Source) Returned() (uint64, error) {
	var n uint64
	if err := s.returned.Lookup(uint32(0), &n); err != nil {
		return 0, fmt.Errorf("read returned counter: %w", err)
	}
	return n, nil
}

// Sent is how many frames the source has transmitted since Open.
func (s *Source) Sent() (uint64, error) {
	var n uint64
	if err := s.sent.Lookup(uint32(0), &n); err != nil {
		return 0, fmt.Errorf("read sent counter: %w", err)
	}
	return n, nil
}

// Send transmits at least n copies of frame (more when a signal interrupts
// it; Sent has the count), in batches of 64 as the kernel builds them.
func (s *Source) Send(frame []byte, n int) error {
	if n <= 0 {
		return nil
	}
	_, err := s.tx.Run(&ebpf.RunOptions{
		Data:      frame,
		Repeat:    uint32(n),
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context:   xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(s.ifindex)},
		BatchSize: 64,
	})
	if err != nil {
		return fmt.Errorf("send live frames: %w", err)
	}
	return nil
}

// Cost is what sending a burst took: wall-clock time, and the CPU time of
// the sending thread.
type Cost struct {
	Wall, CPU time.Duration
}

// SendTimed is Send, returning its cost. The CPU time counts the receiving
// side's work too when the kernel does it in the sender's thread: the
// receiver's NAPI poll, which runs the peer's XDP program, runs as a
// softirq when the send re-enables bottom halves, charged to the sending
// thread on a kernel without CONFIG_IRQ_TIME_ACCOUNTING. It is the figure
// to compare under load: the wall time also counts the time other
// processes held the CPU. The caller must hold its OS thread
// (runtime.LockOSThread, as netns Do does).
func (s *Source) SendTimed(frame []byte, n int) (Cost, error) {
	cpu0, err := threadCPU()
	if err != nil {
		return Cost{}, err
	}
	start := time.Now()
	err = s.Send(frame, n)
	wall := time.Since(start)
	cpu1, cerr := threadCPU()
	if err != nil {
		return Cost{}, err
	}
	if cerr != nil {
		return Cost{}, cerr
	}
	return Cost{Wall: wall, CPU: cpu1 - cpu0}, nil
}

func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("read thread CPU time: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// Close detaches and unloads the source's programs.
func (s *Source) Close() error {
	var errs []error
	if s.hook != nil {
		errs = append(errs, s.hook.Close())
	}
	for _, p := range []*ebpf.Program{s.tx, s.pass, s.back} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, m := range []*ebpf.Map{s.sent, s.returned} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// HardwareAddr is ifname's MAC address, the destination of frames sent to
// it. enter, when not nil, runs the lookup inside another namespace (a
// netns.NS's Do).
func HardwareAddr(enter func(func() error) error, ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	lookup := func() error {
		iface, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = iface.HardwareAddr
		return nil
	}
	var err error
	if enter != nil {
		err = enter(lookup)
	} else {
		err = lookup()
	}
	if err != nil {
		return nil, fmt.Errorf("find interface %s: %w", ifname, err)
	}
	return mac, nil
}

// Stream is a paced, steady flow of frames from a Source.
type Stream struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	sent []uint64
	err  error
}

// Start sends burst copies of each of frames every interval until Stop.
// enter, when not nil, runs the send loop, for example inside the source's
// namespace (a netns.NS's Do); nil runs it in the process's namespace.
func (s *Source) Start(interval time.Duration, burst int, enter func(func() error) error, frames ...[]byte) *Stream {
	st := &Stream{stop: make(chan struct{}), done: make(chan struct{}), sent: make([]uint64, len(frames))}
	loop := func() error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-st.stop:
				return nil
			case <-tick.C:
			}
			for i, f := range frames {
				before, err := s.Sent()
				if err != nil {
					return err
				}
				if err := s.Send(f, burst); err != nil {
					return err
				}
				after, err := s.Sent()
				if err != nil {
					return err
				}
				st.mu.Lock()
				st.sent[i] += after - before
				st.mu.Unlock()
			}
		}
	}
	go func() {
		defer close(st.done)
		var err error
		if enter != nil {
			err = enter(loop)
		} else {
			err = loop()
		}
		st.mu.Lock()
		st.err = err
		st.mu.Unlock()
	}()
	return st
}

// Stop ends the stream and returns how many copies of each frame were sent,
// in the order Start was given them, and the first send error.
func (st *Stream) Stop() ([]uint64, error) {
	close(st.stop)
	<-st.done
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]uint64(nil), st.sent...), st.err
}

// AttachXDP attaches prog to the interface in native mode, trying again
// for up to a second while the kernel answers EBUSY: benchmarks that swap
// programs on one interface round after round sometimes attach before the
// previous link's release has finished.
func AttachXDP(prog *ebpf.Program, ifindex int) (link.Link, error) {
	deadline := time.Now().Add(time.Second)
	for {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
