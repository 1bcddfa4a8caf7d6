package xdpfilter

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/bpfleet/bpfleet/bpf/internal/benchprogs"
	"github.com/bpfleet/bpfleet/test/support/bpfbench"
	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// BenchmarkProgRun measures the filter's cost per packet with BPF_PROG_RUN,
// against an XDP_PASS program as the baseline in the same rounds. Rule sets
// are written with their index; "-scan" without it.
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
		// Rules that check the port, then the pattern rule last.
		many[i] = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: uint16(20000 + i)}
	}
	many[MaxRules-1] = tableRules[0]
	v6src := Rule{Action: ActionDrop, Source: netip.MustParsePrefix("2001:db8:bad::/48")}

	b.Run("3-rules/pass", func(b *testing.B) {
		bpfbench.ProgRun(b, progs.Pass, loadObjects(b, xdpPass, three).XdpPodFilter, good, xdpPass)
	})
	b.Run("3-rules/drop-pattern", func(b *testing.B) {
		bpfbench.ProgRun(b, progs.Pass, loadObjects(b, xdpPass, three).XdpPodFilter, bad, xdpDrop)
	})
	b.Run(fmt.Sprintf("%d-rules/pass", MaxRules), func(b *testing.B) {
		bpfbench.ProgRun(b, progs.Pass, loadObjects(b, xdpPass, many).XdpPodFilter, good, xdpPass)
	})
	b.Run(fmt.Sprintf("%d-rules/drop-last", MaxRules), func(b *testing.B) {
		bpfbench.ProgRun(b, progs.Pass, loadObjects(b, xdpPass, many).XdpPodFilter, bad, xdpDrop)
	})
	b.Run(fmt.Sprintf("%d-rules-scan/drop-last", MaxRules), func(b *testing.B) {
		bpfbench.ProgRun(b, progs.Pass, loadScanObjects(b, xdpPass, many).XdpPodFilter, bad, xdpDrop)
	})
	b.Run("ipv6-prefix/drop", func(b *testing.B) {
		in := frame.Build(tcp(netip.MustParseAddr("2001:db8:bad::7"), v6b, 80))
		bpfbench.ProgRun(b, progs.Pass, loadObjects(b, xdpPass, []Rule{v6src}).XdpPodFilter, in, xdpDrop)
	})
}
