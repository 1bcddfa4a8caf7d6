package xdplb

import (
	"net/netip"
	"testing"

	"github.com/bpfleet/bpfleet/bpf/internal/benchprogs"
	"github.com/bpfleet/bpfleet/test/support/bpfbench"
	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// BenchmarkProgRun measures the datapath's cost per packet with
// BPF_PROG_RUN, against an XDP_PASS program as the baseline in the same
// rounds. Each run rewrites the same input frame (the kernel copies it in
// every time).
func BenchmarkProgRun(b *testing.B) {
	privileged.RequireRoot(b)
	progs, err := benchprogs.Load()
	if err != nil {
		b.Fatal(err)
	}
	defer progs.Close()
	o := loadLB(b)
	for _, p := range []Protocol{ProtocolUDP, ProtocolTCP} {
		setService(b, o, uint32(p)%2, Service{VIP: vip, Protocol: p}, backends)
	}
	setService(b, o, 2, Service{VIP: vip6, Protocol: ProtocolUDP}, backends6)
	udpToVIP := frame.Build(toVIP(frame.ProtocolUDP, 1000))
	b.Run("udp-to-vip", func(b *testing.B) { bpfbench.ProgRun(b, progs.Pass, o.XdpLb, udpToVIP, xdpPass) })
	b.Run("tcp-to-vip", func(b *testing.B) {
		bpfbench.ProgRun(b, progs.Pass, o.XdpLb, frame.Build(toVIP(frame.ProtocolTCP, 1000)), xdpPass)
	})
	b.Run("udp6-to-vip", func(b *testing.B) {
		bpfbench.ProgRun(b, progs.Pass, o.XdpLb, frame.Build(toVIP6(frame.ProtocolUDP, 1000)), xdpPass)
	})
	b.Run("reply-from-backend", func(b *testing.B) {
		in := frame.Build(frame.Spec{Src: backends[0].Addr.Addr(), Dst: client, Protocol: frame.ProtocolUDP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")})
		bpfbench.ProgRun(b, progs.Pass, o.XdpLb, in, xdpPass)
	})
	b.Run("other-traffic", func(b *testing.B) {
		in := frame.Build(frame.Spec{Src: client, Dst: netip.MustParseAddr("10.9.9.9"), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 53})
		bpfbench.ProgRun(b, progs.Pass, o.XdpLb, in, xdpPass)
	})
}

// BenchmarkVsTXCeiling measures the datapath against a program that only
// returns XDP_TX, the ceiling for any XDP load balancer, with BPF_PROG_RUN
// on the same frame in alternating rounds, and reports the share of the
// ceiling's packet rate the load balancer reaches (goal: 0.8): the
// XDP_TX program's ns per packet over the load balancer's.
func BenchmarkVsTXCeiling(b *testing.B) {
	privileged.RequireRoot(b)
	progs, err := benchprogs.Load()
	if err != nil {
		b.Fatal(err)
	}
	defer progs.Close()
	o := loadLB(b)
	setService(b, o, 0, Service{VIP: vip, Protocol: ProtocolUDP}, backends)
	setService(b, o, 1, Service{VIP: vip6, Protocol: ProtocolUDP}, backends6)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"udp4-to-vip", frame.Build(toVIP(frame.ProtocolUDP, 1000))},
		{"udp6-to-vip", frame.Build(toVIP6(frame.ProtocolUDP, 1000))},
		{"other-traffic", frame.Build(frame.Spec{Src: client, Dst: netip.MustParseAddr("10.9.9.9"), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 53})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lb, tx := bpfbench.ProgRun(b, progs.TX, o.XdpLb, tc.in, xdpPass)
			b.ReportMetric(tx/lb, "share-of-ceiling")
		})
	}
}
