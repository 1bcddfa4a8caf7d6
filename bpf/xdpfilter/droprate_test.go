package xdpfilter

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/livetraffic"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// dropBench is a traffic source namespace and a sink namespace: an
// in-kernel source (live frames) on the source's veth end sends frames to
// the sink's end, where either the filter or an nftables rule drops them.
type dropBench struct {
	src, sink   *netns.NS
	veth        *netns.Veth
	sinkIfindex int
	frame       []byte
	source      *livetraffic.Source
	nft         string
}

func newDropBench(b *testing.B) *dropBench {
	b.Helper()
	d := &dropBench{src: netns.New(b), sink: netns.New(b)}
	d.nft = privileged.RequireCommand(b, "nft")
	ethtool := privileged.RequireCommand(b, "ethtool")
	d.veth = netns.NewVeth(b, d.src, "10.78.0.1/24", d.sink, "10.78.0.2/24")
	// Frames sent by XDP_TX into a veth need NAPI on the peer: GRO gives
	// it even when no XDP program is attached (the nftables case).
	d.sink.Exec(b, ethtool, "-K", d.veth.B, "gro", "on")
	var srcMAC, sinkMAC net.HardwareAddr
	if err := d.sink.Do(b, func() error {
		iface, err := net.InterfaceByName(d.veth.B)
		if err == nil {
			d.sinkIfindex, sinkMAC = iface.Index, iface.HardwareAddr
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if err := d.src.Do(b, func() error {
		iface, err := net.InterfaceByName(d.veth.A)
		if err != nil {
			return err
		}
		srcMAC = iface.HardwareAddr
		d.source, err = livetraffic.Open(d.veth.A)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.source.Close() })
	spec := frame.Spec{
		Src: netip.MustParseAddr("10.78.0.1"), Dst: netip.MustParseAddr("10.78.0.2"),
		Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: 9999,
		Payload: []byte("DEATH-padding-to-a-60-byte-frame"),
	}
	copy(spec.SrcMAC[:], srcMAC)
	copy(spec.DstMAC[:], sinkMAC)
	d.frame = frame.Build(spec)
	return d
}

// send transmits n frames from the source and returns what it took.
func (d *dropBench) send(b *testing.B, n int) livetraffic.Cost {
	b.Helper()
	var c livetraffic.Cost
	err := d.src.Do(b, func() error {
		var err error
		c, err = d.source.SendTimed(d.frame, n)
		return err
	})
	if err != nil {
		b.Fatalf("send live frames: %v", err)
	}
	return c
}

// rate is a drop rate in packets per second: per wall-clock second, and
// per second of the sending thread's CPU, which also runs the receiver's
// XDP program (livetraffic.SendTimed). Under load the CPU rate is the
// figure to compare: the wall rate also counts the time other processes
// held the CPU. delivered is the share of the frames sent that the
// program counted (1 for the ceiling, which counts nothing).
type rate struct{ wall, cpu, delivered float64 }

// xdpRate attaches the filter natively to the sink, sends n frames and
// returns the filter's drop rate in packets per wall second, counted by
// rule 0.
func (d *dropBench) xdpRate(b *testing.B, objs *xdpfilterObjects, n int) float64 {
	b.Helper()
	return d.xdpRateAt(b, objs, 0, n).wall
}

// xdpRateAt is the drop rate of the filter counted by the given rule.
func (d *dropBench) xdpRateAt(b *testing.B, objs *xdpfilterObjects, rule uint32, n int) rate {
	b.Helper()
	var l link.Link
	if err := d.sink.Do(b, func() error {
		var err error
		l, err = livetraffic.AttachXDP(objs.XdpPodFilter, d.sinkIfindex)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	before := hits(b, objs.RuleHits, rule).Packets
	c := d.send(b, n)
	dropped := hits(b, objs.RuleHits, rule).Packets - before
	if dropped == 0 {
		b.Fatal("the filter dropped nothing")
	}
	return rate{float64(dropped) / c.Wall.Seconds(), float64(dropped) / c.CPU.Seconds(), float64(dropped) / float64(n)}
}

var nftCounter = regexp.MustCompile(`counter packets (\d+)`)

// nftRate installs the equivalent nftables rule at the sink's netdev
// ingress hook (the earliest nftables hook), sends n frames and returns its
// drop rate in packets per second.
func (d *dropBench) nftRate(b *testing.B, n int) float64 {
	b.Helper()
	table := netns.UniqueName("bpfl")
	rules := fmt.Sprintf(`table netdev %s {
	chain ingress {
		type filter hook ingress device %s priority 0;
		udp dport 9999 @th,64,40 0x%x counter drop
	}
}
`, table, d.veth.B, "DEATH")
	file := filepath.Join(b.TempDir(), "rules.nft")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		b.Fatal(err)
	}
	d.sink.Exec(b, d.nft, "-f", file)
	defer d.sink.Exec(b, d.nft, "delete", "table", "netdev", table)
	elapsed := d.send(b, n).Wall
	m := nftCounter.FindStringSubmatch(d.sink.Exec(b, d.nft, "list", "table", "netdev", table))
	if m == nil {
		b.Fatal("no nftables counter")
	}
	dropped, _ := strconv.ParseUint(m[1], 10, 64)
	if dropped == 0 {
		b.Fatal("the nftables rule dropped nothing")
	}
	return float64(dropped) / elapsed.Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkDropRateXDPvsNftables compares the packet-of-death filter in
// native XDP with the equivalent nftables rule on the same veth and the
// same traffic (live frames from an XDP_TX program on the peer), in
// interleaved A/B rounds, and reports medians and the spread.
func BenchmarkDropRateXDPvsNftables(b *testing.B) {
	privileged.RequireBPFFS(b)
	const (
		rounds = 7
		frames = 1_000_000
	)
	objs := loadObjects(b, xdpPass, []Rule{{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, Pattern: []byte("DEATH")}})
	d := newDropBench(b)
	for b.Loop() {
		var xdp, nft []float64
		for r := range rounds {
			if r%2 == 0 {
				xdp = append(xdp, d.xdpRate(b, objs, frames))
				nft = append(nft, d.nftRate(b, frames))
			} else {
				nft = append(nft, d.nftRate(b, frames))
				xdp = append(xdp, d.xdpRate(b, objs, frames))
			}
		}
		mx, mn := median(xdp), median(nft)
		b.ReportMetric(mx/1e6, "xdp-Mpps")
		b.ReportMetric(mn/1e6, "nft-Mpps")
		b.ReportMetric(mx/mn, "xdp/nft")
		b.ReportMetric((slices.Max(xdp)-slices.Min(xdp))/mx*100, "xdp-spread-%")
		b.ReportMetric((slices.Max(nft)-slices.Min(nft))/mn*100, "nft-spread-%")
		b.Logf("xdp Mpps per round: %.2f", scale(xdp))
		b.Logf("nft Mpps per round: %.2f", scale(nft))
	}
}

func scale(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x / 1e6
	}
	return out
}

// dropAllProgram is the ceiling: a program that only returns XDP_DROP.
func dropAllProgram(b *testing.B) *ebpf.Program {
	b.Helper()
	drop, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xdp_drop_all", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1 /* XDP_DROP */), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = drop.Close() })
	return drop
}

// ceilingRate attaches a program that only returns XDP_DROP, the most any
// XDP filter can drop on this path, and returns its rate for n frames.
func (d *dropBench) ceilingRate(b *testing.B, prog *ebpf.Program, n int) rate {
	b.Helper()
	var l link.Link
	if err := d.sink.Do(b, func() error {
		var err error
		l, err = livetraffic.AttachXDP(prog, d.sinkIfindex)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c := d.send(b, n)
	return rate{float64(n) / c.Wall.Seconds(), float64(n) / c.CPU.Seconds(), 1}
}

// deathLastRules are n rules of which only the last matches the benchmark's
// packet of death, so the filter evaluates every one: a typical rule set
// (the others guard other ports) or, samePort, the worst case (the others
// match its protocol and port and differ only in the payload pattern).
func deathLastRules(n int, samePort bool) []Rule {
	rules := make([]Rule, n)
	for i := range rules[:n-1] {
		port := uint16(10000 + i)
		if samePort {
			port = 9999
		}
		rules[i] = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: port, Pattern: fmt.Appendf(nil, "X%04d", i)}
	}
	rules[n-1] = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, Pattern: []byte("DEATH")}
	return rules
}

// BenchmarkDropRateVsCeiling: the packet-of-death filter with 3 rules and
// with every rule slot filled (the matching rule last), against a program
// that drops everything unconditionally, on the same veth and live-frame
// traffic, in interleaved rounds: the share of the XDP ceiling the filter
// reaches. The rule sets are written as RuleSet.Entries writes them (3
// rules: scanned, below IndexMinRules; 64: with the index); "3-rules-indexed"
// forces the index on 3 rules and "64-rules-scan" writes 64 rules slot by
// slot without it (the filter before the index), for comparisons in the
// same run.
//
// Each set reports its median rate per wall second (-Mpps) and per second
// of CPU (-cpu-Mpps, the goal's figure: see rate), the medians of its
// per-round shares of the ceiling (/ceiling, /ceiling-cpu; a round runs
// every set and the ceiling back to back), and the least share of the
// frames sent that reached its counter (-delivered).
func BenchmarkDropRateVsCeiling(b *testing.B) {
	privileged.RequireBPFFS(b)
	const (
		rounds = 7
		frames = 500_000
	)
	drop := dropAllProgram(b)
	sets := []struct {
		name string
		objs *xdpfilterObjects
		last uint32
	}{
		{"3-rules", loadShippedObjects(b, xdpPass, deathLastRules(3, false)), 2},
		{fmt.Sprintf("%d-rules", MaxRules), loadShippedObjects(b, xdpPass, deathLastRules(MaxRules, false)), MaxRules - 1},
		{fmt.Sprintf("%d-rules-same-port", MaxRules), loadShippedObjects(b, xdpPass, deathLastRules(MaxRules, true)), MaxRules - 1},
		{"3-rules-indexed", loadObjects(b, xdpPass, deathLastRules(3, false)), 2},
		{fmt.Sprintf("%d-rules-scan", MaxRules), loadScanObjects(b, xdpPass, deathLastRules(MaxRules, false)), MaxRules - 1},
	}
	d := newDropBench(b)
	for b.Loop() {
		rates := make([][]rate, len(sets)+1) // the ceiling last
		for r := range rounds {
			for i := range len(sets) + 1 {
				j := (i + r) % (len(sets) + 1)
				if j == len(sets) {
					rates[j] = append(rates[j], d.ceilingRate(b, drop, frames))
					continue
				}
				rates[j] = append(rates[j], d.xdpRateAt(b, sets[j].objs, sets[j].last, frames))
			}
		}
		ceiling := rates[len(sets)]
		b.ReportMetric(median(wallRates(ceiling))/1e6, "drop-all-Mpps")
		b.ReportMetric(median(cpuRates(ceiling))/1e6, "drop-all-cpu-Mpps")
		for i, s := range sets {
			b.ReportMetric(median(wallRates(rates[i]))/1e6, s.name+"-Mpps")
			b.ReportMetric(median(cpuRates(rates[i]))/1e6, s.name+"-cpu-Mpps")
			b.ReportMetric(median(shares(wallRates(rates[i]), wallRates(ceiling))), s.name+"/ceiling")
			b.ReportMetric(median(shares(cpuRates(rates[i]), cpuRates(ceiling))), s.name+"/ceiling-cpu")
			delivered := 1.0
			for _, r := range rates[i] {
				delivered = min(delivered, r.delivered)
			}
			b.ReportMetric(delivered, s.name+"-delivered")
		}
	}
}

func wallRates(rs []rate) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.wall
	}
	return out
}

func cpuRates(rs []rate) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.cpu
	}
	return out
}

// shares are the round-by-round ratios of xs to the ceiling's rates.
func shares(xs, ceiling []float64) []float64 {
	out := make([]float64, len(xs))
	for i := range xs {
		out[i] = xs[i] / ceiling[i]
	}
	return out
}
