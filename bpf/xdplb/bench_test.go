package xdplb

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bpf/internal/benchprogs"
	"github.com/bpfleet/bpfleet/bpf/internal/frame"
	"github.com/bpfleet/bpfleet/test/privileged"
)

// benchRun measures prog and the baseline program on the same frame in
// alternating rounds of BPF_PROG_RUN with repeat (b.N split over the
// rounds), and reports kernel-measured medians: the program's ns/packet,
// the baseline's, and the program's cost above the baseline. Alternating
// keeps both under the same machine load.
func benchRun(b *testing.B, baseline, prog *ebpf.Program, in []byte, want uint32) {
	b.Helper()
	const rounds = 9
	repeat := max(b.N/rounds, 1)
	var progNs, baseNs, deltaNs []float64
	for range rounds {
		_, base, err := baseline.Benchmark(in, repeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		ret, per, err := prog.Benchmark(in, repeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("verdict %d, want %d", ret, want)
		}
		progNs = append(progNs, float64(per.Nanoseconds()))
		baseNs = append(baseNs, float64(base.Nanoseconds()))
		deltaNs = append(deltaNs, float64(per.Nanoseconds()-base.Nanoseconds()))
	}
	b.ReportMetric(medianOf(progNs), "ns/packet")
	b.ReportMetric(medianOf(baseNs), "baseline-ns/packet")
	b.ReportMetric(medianOf(deltaNs), "over-baseline-ns/packet")
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

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
	b.Run("udp-to-vip", func(b *testing.B) { benchRun(b, progs.Pass, o.XdpLb, udpToVIP, xdpPass) })
	b.Run("tcp-to-vip", func(b *testing.B) {
		benchRun(b, progs.Pass, o.XdpLb, frame.Build(toVIP(frame.ProtocolTCP, 1000)), xdpPass)
	})
	b.Run("udp6-to-vip", func(b *testing.B) {
		benchRun(b, progs.Pass, o.XdpLb, frame.Build(toVIP6(frame.ProtocolUDP, 1000)), xdpPass)
	})
	b.Run("reply-from-backend", func(b *testing.B) {
		in := frame.Build(frame.Spec{Src: backends[0].Addr.Addr(), Dst: client, Protocol: frame.ProtocolUDP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")})
		benchRun(b, progs.Pass, o.XdpLb, in, xdpPass)
	})
	b.Run("other-traffic", func(b *testing.B) {
		in := frame.Build(frame.Spec{Src: client, Dst: netip.MustParseAddr("10.9.9.9"), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 53})
		benchRun(b, progs.Pass, o.XdpLb, in, xdpPass)
	})
}
