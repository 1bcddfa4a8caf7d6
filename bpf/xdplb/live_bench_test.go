package xdplb

import (
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/bpf/internal/benchprogs"
	"github.com/bpfleet/bpfleet/test/support/bpfbench"
	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/livetraffic"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// liveTX is a veth pair between a traffic source namespace and a namespace
// whose end runs an XDP_TX program (the one-arm load balancer or the
// trivial reflector): every frame crosses to the reflecting end and comes
// back, where the source's end counts and drops it.
type liveTX struct {
	src, sink   *netns.NS
	sinkIfindex int
	srcMAC      [6]byte
	sinkMAC     [6]byte
	source      *livetraffic.Source
}

func newLiveTX(b *testing.B) *liveTX {
	b.Helper()
	l := &liveTX{src: netns.New(b), sink: netns.New(b)}
	veth := netns.NewVeth(b, l.src, "10.82.0.1/24", l.sink, "10.82.0.2/24")
	if err := l.sink.Do(b, func() error {
		iface, err := net.InterfaceByName(veth.B)
		if err == nil {
			l.sinkIfindex = iface.Index
			copy(l.sinkMAC[:], iface.HardwareAddr)
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if err := l.src.Do(b, func() error {
		iface, err := net.InterfaceByName(veth.A)
		if err != nil {
			return err
		}
		copy(l.srcMAC[:], iface.HardwareAddr)
		if l.source, err = livetraffic.Open(veth.A); err != nil {
			return err
		}
		return l.source.CountReturns()
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.source.Close() })
	return l
}

// round attaches prog to the reflecting end, sends n copies of in and
// returns the frames that came back per wall second and per second of the
// sending thread's CPU (which runs both ends' XDP programs:
// livetraffic.SendTimed), and the share of the frames sent that came back.
func (l *liveTX) round(b *testing.B, prog *ebpf.Program, in []byte, n int) (wall, cpu, back float64) {
	b.Helper()
	var hook link.Link
	if err := l.sink.Do(b, func() error {
		var err error
		hook, err = livetraffic.AttachXDP(prog, l.sinkIfindex)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer hook.Close()
	var cost livetraffic.Cost
	var returned uint64
	if err := l.src.Do(b, func() error {
		before, err := l.source.Returned()
		if err != nil {
			return err
		}
		if cost, err = l.source.SendTimed(in, n); err != nil {
			return err
		}
		after, err := l.source.Returned()
		returned = after - before
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if returned == 0 {
		b.Fatal("no frame came back")
	}
	return float64(returned) / cost.Wall.Seconds(), float64(returned) / cost.CPU.Seconds(), float64(returned) / float64(n)
}

// BenchmarkLiveVsTXCeiling: the load balancer as a one-arm load balancer
// (forward_action XDP_TX) against a program that only returns XDP_TX, the
// most any XDP_TX program can forward on this path, on the same veth and
// live-frame traffic to a VIP, in alternating rounds (issue 21, item 4).
// Each frame goes to the reflecting end and back to the source's end,
// which counts and drops it. Reports the median rates per wall second and
// per second of CPU (lb-cpu-Mpps against tx-cpu-Mpps is the goal's
// figure: under load the wall rate also counts the time other processes
// held the CPU), the median of the per-round CPU shares (share-cpu), and
// the least share of the frames that came back (lb-returned).
func BenchmarkLiveVsTXCeiling(b *testing.B) {
	privileged.RequireBPFFS(b)
	const (
		rounds = 9
		frames = 500_000
	)
	progs, err := benchprogs.Load()
	if err != nil {
		b.Fatal(err)
	}
	defer progs.Close()
	o := loadOneArmLB(b)
	// Live frames keep what a program wrote into them when their page comes
	// round again (the kernel copies the frame in only once per page), so
	// each service's one backend is the service's own address and port:
	// the rewrite writes the same values back, the frame stays a frame to
	// the VIP, and every round does the whole work (lookups, Maglev, the
	// rewrite, the counter, the MAC swap).
	setService(b, o, 0, Service{VIP: vip, Protocol: ProtocolUDP}, []Backend{{ID: 21, Addr: vip}})
	setService(b, o, 1, Service{VIP: vip6, Protocol: ProtocolUDP}, []Backend{{ID: 22, Addr: vip6}})
	l := newLiveTX(b)
	for _, tc := range []struct {
		name string
		spec frame.Spec
	}{
		{"udp4-to-vip", toVIP(frame.ProtocolUDP, 1000)},
		{"udp6-to-vip", toVIP6(frame.ProtocolUDP, 1000)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := tc.spec
			s.SrcMAC, s.DstMAC = l.srcMAC, l.sinkMAC
			in := frame.Build(s)
			for b.Loop() {
				var lbWall, lbCPU, txWall, txCPU, shares []float64
				returned := 1.0
				for r := range rounds {
					var lw, lc, lr, tw, tc float64
					if r%2 == 0 {
						lw, lc, lr = l.round(b, o.XdpLb, in, frames)
						tw, tc, _ = l.round(b, progs.TX, in, frames)
					} else {
						tw, tc, _ = l.round(b, progs.TX, in, frames)
						lw, lc, lr = l.round(b, o.XdpLb, in, frames)
					}
					lbWall, lbCPU, txWall, txCPU = append(lbWall, lw), append(lbCPU, lc), append(txWall, tw), append(txCPU, tc)
					shares = append(shares, lc/tc)
					returned = min(returned, lr)
				}
				b.ReportMetric(bpfbench.Median(lbWall)/1e6, "lb-Mpps")
				b.ReportMetric(bpfbench.Median(txWall)/1e6, "tx-Mpps")
				b.ReportMetric(bpfbench.Median(lbCPU)/1e6, "lb-cpu-Mpps")
				b.ReportMetric(bpfbench.Median(txCPU)/1e6, "tx-cpu-Mpps")
				b.ReportMetric(bpfbench.Median(shares), "share-cpu")
				b.ReportMetric(returned, "lb-returned")
			}
		})
	}
}
