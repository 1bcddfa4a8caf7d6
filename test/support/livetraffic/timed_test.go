package livetraffic_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/livetraffic"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestSendTimedCountsTheReceiver sends the same bursts to a receiver whose
// XDP program drops at once and to one whose program first spins a
// bounded loop: the sending thread's CPU time must grow with the
// receiver's work (the receiver's NAPI poll runs in the sender's thread),
// and stay within the wall time.
func TestSendTimedCountsTheReceiver(t *testing.T) {
	privileged.RequireBPFFS(t)
	srcNS, sinkNS := netns.New(t), netns.New(t)
	veth := netns.NewVeth(t, srcNS, "10.80.0.1/24", sinkNS, "10.80.0.2/24")
	prog := func(spin int32) *ebpf.Program {
		insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
		if spin > 0 {
			insns = append(insns,
				asm.Add.Imm(asm.R0, 1).WithSymbol("spin"),
				asm.JLT.Imm(asm.R0, spin, "spin"))
		}
		insns = append(insns, asm.Mov.Imm(asm.R0, 1), asm.Return()) // XDP_DROP
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: insns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}
	cheap, costly := prog(0), prog(500)

	var sinkIndex int
	if err := sinkNS.Do(t, func() error {
		iface, err := net.InterfaceByName(veth.B)
		if err == nil {
			sinkIndex = iface.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var src *livetraffic.Source
	if err := srcNS.Do(t, func() error {
		var err error
		src, err = livetraffic.Open(veth.A)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	in := frame.Build(frame.Spec{Src: netip.MustParseAddr("10.80.0.1"), Dst: netip.MustParseAddr("10.80.0.2"),
		Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 2, Payload: []byte("x")})

	const frames = 100_000
	perFrame := func(p *ebpf.Program) float64 {
		var l link.Link
		if err := sinkNS.Do(t, func() error {
			var err error
			l, err = link.AttachXDP(link.XDPOptions{Program: p, Interface: sinkIndex, Flags: link.XDPDriverMode})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var c livetraffic.Cost
		if err := srcNS.Do(t, func() error {
			var err error
			c, err = src.SendTimed(in, frames)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if c.CPU <= 0 || c.CPU > c.Wall {
			t.Fatalf("CPU time %v, wall time %v: want 0 < CPU <= wall", c.CPU, c.Wall)
		}
		return float64(c.CPU.Nanoseconds()) / frames
	}
	// The cheaper of three tries each, so that a burst slowed by an
	// interrupt does not decide.
	best := func(p *ebpf.Program) float64 {
		m := perFrame(p)
		for range 2 {
			m = min(m, perFrame(p))
		}
		return m
	}
	c, s := best(cheap), best(costly)
	t.Logf("CPU per frame: dropping receiver %.0f ns, spinning receiver %.0f ns", c, s)
	if s < c+100 {
		t.Errorf("a receiver spinning 500 iterations per frame added %.0f ns of the sender's CPU per frame, want at least 100", s-c)
	}
}

// TestCountReturns bounces every frame back from the peer with XDP_TX:
// with CountReturns, the source's interface counts each frame that comes
// back, as many as were sent.
func TestCountReturns(t *testing.T) {
	privileged.RequireBPFFS(t)
	srcNS, sinkNS := netns.New(t), netns.New(t)
	veth := netns.NewVeth(t, srcNS, "10.81.0.1/24", sinkNS, "10.81.0.2/24")
	reflect, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 3), asm.Return()}}) // XDP_TX
	if err != nil {
		t.Fatal(err)
	}
	defer reflect.Close()
	if err := sinkNS.Do(t, func() error {
		iface, err := net.InterfaceByName(veth.B)
		if err != nil {
			return err
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: reflect, Interface: iface.Index, Flags: link.XDPDriverMode})
		if err == nil {
			t.Cleanup(func() { _ = l.Close() })
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	in := frame.Build(frame.Spec{Src: netip.MustParseAddr("10.81.0.1"), Dst: netip.MustParseAddr("10.81.0.2"),
		Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 2, Payload: []byte("x")})
	if err := srcNS.Do(t, func() error {
		src, err := livetraffic.Open(veth.A)
		if err != nil {
			return err
		}
		defer src.Close()
		if err := src.CountReturns(); err != nil {
			return err
		}
		if err := src.Send(in, 10_000); err != nil {
			return err
		}
		sent, err := src.Sent()
		if err != nil {
			return err
		}
		back, err := src.Returned()
		if err != nil {
			return err
		}
		if back != sent {
			t.Errorf("%d frames came back, want the %d sent", back, sent)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
