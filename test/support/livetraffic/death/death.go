//go:build linux

// Package death runs a packet-of-death stream through the xdp-pod-filter:
// good and death frames from livetraffic's in-kernel source, counted at a
// UDP sink and by the filter's own rule counter, across a disruption.
package death

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/livetraffic"
)

// The in-kernel source sends this many copies of each frame (good, death)
// per round, a round every millisecond or as fast as BPF_PROG_RUN returns
// (≈20 ms here): about 5,000 frames a second of each kind.
const (
	deathBurst = 256
	// MinSent is the fewest good frames a disruption must see to count as
	// under traffic.
	MinSent = 10_000
)

// Path is where a packet-of-death stream flows: from the source
// interface, through the veth, to the filtered interface and a UDP sink at
// Dst:Port in that interface's namespace. Enter functions run code in an
// interface's namespace (a netns.NS's Do); nil is this process's.
type Path struct {
	SourceIface string
	SourceEnter func(func() error) error
	FilterIface string
	FilterEnter func(func() error) error
	Src, Dst    netip.Addr
	Port        uint16
	// Pattern starts every packet of death's payload.
	Pattern []byte
	// HitsPin is the path of the filter's pinned rule-hits map now: an
	// upgrade pins new maps there.
	HitsPin func() string
}

// Count is what a packet-of-death stream did across a disruption: good
// frames sent and delivered to the sink; death frames sent, dropped by the
// filter (its rule 0 counter), and delivered.
type Count struct {
	GoodSent, GoodArrived, DeathSent, DeathDropped, DeathArrived uint64
}

// Add sums two counts.
func (c Count) Add(o Count) Count {
	return Count{c.GoodSent + o.GoodSent, c.GoodArrived + o.GoodArrived, c.DeathSent + o.DeathSent, c.DeathDropped + o.DeathDropped, c.DeathArrived + o.DeathArrived}
}

func (c Count) String() string {
	return fmt.Sprintf("good %d sent, %d delivered; death %d sent, %d dropped by the filter, %d delivered",
		c.GoodSent, c.GoodArrived, c.DeathSent, c.DeathDropped, c.DeathArrived)
}

// Check asserts no packet of death got through or past the filter's
// counter, no good packet was lost, and at least MinSent were sent.
func (c Count) Check(tb testing.TB) {
	tb.Helper()
	if c.GoodSent < MinSent {
		tb.Errorf("only %d good frames sent; the disruption was not under traffic", c.GoodSent)
	}
	if c.DeathArrived != 0 {
		tb.Errorf("%d packets of death got through", c.DeathArrived)
	}
	if c.DeathDropped != c.DeathSent {
		tb.Errorf("the filter dropped %d packets of death of %d sent", c.DeathDropped, c.DeathSent)
	}
	if c.GoodArrived != c.GoodSent {
		tb.Errorf("lost %d good packets of %d", int64(c.GoodSent)-int64(c.GoodArrived), c.GoodSent)
	}
}

// Report reports unfiltered, lost and sent packets as benchmark metrics.
func (c Count) Report(b *testing.B) {
	b.ReportMetric(float64(c.DeathArrived+c.DeathSent-c.DeathDropped), "unfiltered-packets")
	b.ReportMetric(float64(c.GoodSent-min(c.GoodArrived, c.GoodSent)), "lost-packets")
	b.ReportMetric(float64(c.GoodSent+c.DeathSent), "packets-sent")
}

// During runs disrupt while an in-kernel source sends good and
// death frames along p, and counts the outcome. disrupt calls follow when
// the filter's maps may have been replaced (an upgrade).
func During(tb testing.TB, p Path, disrupt func(follow func())) Count {
	tb.Helper()
	run := func(enter func(func() error) error, fn func() error) error {
		if enter == nil {
			return fn()
		}
		return enter(fn)
	}
	dstMAC, err := livetraffic.HardwareAddr(p.FilterEnter, p.FilterIface)
	if err != nil {
		tb.Fatal(err)
	}
	srcMAC, err := livetraffic.HardwareAddr(p.SourceEnter, p.SourceIface)
	if err != nil {
		tb.Fatal(err)
	}
	spec := frame.Spec{Src: p.Src, Dst: p.Dst, Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: p.Port}
	copy(spec.SrcMAC[:], srcMAC)
	copy(spec.DstMAC[:], dstMAC)
	spec.Payload = []byte("hello from the kernel")
	good := frame.Build(spec)
	spec.Payload = append(append([]byte{}, p.Pattern...), " from the kernel"...)
	death := frame.Build(spec)

	sink, err := livetraffic.ListenUDP(p.FilterEnter, netip.AddrPortFrom(p.Dst, p.Port), p.Pattern)
	if err != nil {
		tb.Fatal(err)
	}
	defer sink.Close()
	var src *livetraffic.Source
	if err := run(p.SourceEnter, func() (err error) { src, err = livetraffic.Open(p.SourceIface); return err }); err != nil {
		tb.Fatal(err)
	}
	defer src.Close()

	drops := newDropCounter(tb, p.HitsPin)
	defer drops.close()
	stream := src.Start(time.Millisecond, deathBurst, p.SourceEnter, good, death)
	disrupt(func() { drops.follow(tb) })
	sent, err := stream.Stop()
	if err != nil {
		tb.Fatal(err)
	}
	arrived := sink.Settle(100 * time.Millisecond)
	drops.follow(tb)
	return Count{
		GoodSent: sent[0], GoodArrived: arrived[1],
		DeathSent: sent[1], DeathDropped: drops.total(tb), DeathArrived: arrived[0],
	}
}

// dropCounter sums the packets the filter's rule 0 matched, on every CPU.
// An upgrade loads new maps: follow opens the map pinned now, and the total
// is over every map seen, each held open until close.
type dropCounter struct {
	pin   func() string
	maps  map[ebpf.MapID]*ebpf.Map
	start uint64
}

func newDropCounter(tb testing.TB, pin func() string) *dropCounter {
	tb.Helper()
	d := &dropCounter{pin: pin, maps: map[ebpf.MapID]*ebpf.Map{}}
	d.start = hits(tb, d.follow(tb))
	return d
}

func (d *dropCounter) follow(tb testing.TB) *ebpf.Map {
	tb.Helper()
	m, err := ebpf.LoadPinnedMap(d.pin(), nil)
	if err != nil {
		tb.Fatalf("open pinned %s: %v", xdpfilter.HitsMap, err)
	}
	info, err := m.Info()
	if err != nil {
		tb.Fatal(err)
	}
	id, _ := info.ID()
	if seen, ok := d.maps[id]; ok {
		m.Close()
		return seen
	}
	d.maps[id] = m
	return m
}

func (d *dropCounter) total(tb testing.TB) uint64 {
	tb.Helper()
	var sum uint64
	for _, m := range d.maps {
		sum += hits(tb, m)
	}
	return sum - d.start
}

func (d *dropCounter) close() {
	for _, m := range d.maps {
		m.Close()
	}
}

func hits(tb testing.TB, m *ebpf.Map) uint64 {
	tb.Helper()
	var perCPU []xdpfilter.Counter
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		tb.Fatalf("read %s: %v", xdpfilter.HitsMap, err)
	}
	return xdpfilter.Sum(perCPU).Packets
}
