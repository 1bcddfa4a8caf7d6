package xdpfilter

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

// BenchmarkProgRun measures the filter's cost per packet with BPF_PROG_RUN,
// against an XDP_PASS program as the baseline in the same rounds.
func BenchmarkProgRun(b *testing.B) {
	privileged.RequireRoot(b)
	progs, err := benchprogs.Load()
	if err != nil {
		b.Fatal(err)
	}
	defer progs.Close()

	good := frame.Build(udp4(9999, "xxxxHELLO-some-payload-bytes"))
	bad := frame.Build(udp4(9999, "xxxxDEATH-some-payload-bytes"))
	three := tableRules[:3]
	many := make([]Rule, MaxRules)
	for i := range many {
		// 31 rules that check the port, then the pattern rule last.
		many[i] = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: uint16(20000 + i)}
	}
	many[MaxRules-1] = tableRules[0]
	v6src := Rule{Action: ActionDrop, Source: netip.MustParsePrefix("2001:db8:bad::/48")}

	b.Run("3-rules/pass", func(b *testing.B) {
		benchRun(b, progs.Pass, loadObjects(b, xdpPass, three).XdpPodFilter, good, xdpPass)
	})
	b.Run("3-rules/drop-pattern", func(b *testing.B) { benchRun(b, progs.Pass, loadObjects(b, xdpPass, three).XdpPodFilter, bad, xdpDrop) })
	b.Run("32-rules/pass", func(b *testing.B) { benchRun(b, progs.Pass, loadObjects(b, xdpPass, many).XdpPodFilter, good, xdpPass) })
	b.Run("32-rules/drop-last", func(b *testing.B) { benchRun(b, progs.Pass, loadObjects(b, xdpPass, many).XdpPodFilter, bad, xdpDrop) })
	b.Run("ipv6-prefix/drop", func(b *testing.B) {
		in := frame.Build(tcp(netip.MustParseAddr("2001:db8:bad::7"), v6b, 80))
		benchRun(b, progs.Pass, loadObjects(b, xdpPass, []Rule{v6src}).XdpPodFilter, in, xdpDrop)
	})
}
