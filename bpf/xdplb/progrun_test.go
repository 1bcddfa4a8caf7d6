package xdplb

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

const (
	xdpDrop = 1
	xdpPass = 2
)

var (
	client   = netip.MustParseAddr("10.200.0.2")
	vip      = netip.MustParseAddrPort("10.250.0.1:80")
	deadVIP  = netip.MustParseAddrPort("10.250.0.2:80") // a service without backends
	backends = []Backend{
		{ID: 1, Addr: netip.MustParseAddrPort("10.201.1.2:8080")},
		{ID: 2, Addr: netip.MustParseAddrPort("10.201.2.2:8080")},
		{ID: 3, Addr: netip.MustParseAddrPort("10.201.3.2:8080")},
	}
	client6   = netip.MustParseAddr("fd20::2")
	vip6      = netip.MustParseAddrPort("[fd50::1]:80")
	mixedVIP6 = netip.MustParseAddrPort("[fd50::2]:80") // points at IPv4 backends
	backends6 = []Backend{
		{ID: 11, Addr: netip.MustParseAddrPort("[fd21:1::2]:8080")},
		{ID: 12, Addr: netip.MustParseAddrPort("[fd21:2::2]:8080")},
		{ID: 13, Addr: netip.MustParseAddrPort("[fd21:3::2]:8080")},
	}
)

func loadLB(tb testing.TB) *xdplbObjects {
	tb.Helper()
	privileged.RequireRoot(tb)
	var objs xdplbObjects
	if err := loadXdplbObjects(&objs, nil); err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { _ = objs.Close() })
	return &objs
}

func mapsOf(o *xdplbObjects) Maps {
	return Maps{VIPs: o.Vips, Rings: o.Rings, Backends: o.Backends, Reals: o.Reals}
}

func setService(tb testing.TB, o *xdplbObjects, ring uint32, s Service, bs []Backend) []int {
	tb.Helper()
	table, err := MaglevRebuild(nil, nil, BackendNames(bs), RingSize)
	if err != nil {
		tb.Fatal(err)
	}
	if err := mapsOf(o).SetService(ring, s, bs, table); err != nil {
		tb.Fatal(err)
	}
	return table
}

// pointAt writes a VIPsMap entry by hand.
func pointAt(tb testing.TB, o *xdplbObjects, s Service, ring uint32) {
	tb.Helper()
	k, err := VIPKey(s)
	if err != nil {
		tb.Fatal(err)
	}
	v, _ := VIPValue(ring)
	if err := o.Vips.Update(k, v, ebpf.UpdateAny); err != nil {
		tb.Fatal(err)
	}
}

func run(tb testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	tb.Helper()
	out := make([]byte, len(in)+64)
	ret, err := prog.Run(&ebpf.RunOptions{Data: bytes.Clone(in), DataOut: out})
	if err != nil {
		tb.Fatal(err)
	}
	return ret, out[:len(in)] // XDP_PASS/DROP keep the frame's length
}

func toVIP(proto uint8, sport uint16) frame.Spec {
	return frame.Spec{Src: client, Dst: vip.Addr(), Protocol: proto, SrcPort: sport, DstPort: vip.Port(), Payload: []byte("request")}
}

func toVIP6(proto uint8, sport uint16) frame.Spec {
	return frame.Spec{Src: client6, Dst: vip6.Addr(), Protocol: proto, SrcPort: sport, DstPort: vip6.Port(), Payload: []byte("request")}
}

func backendByAddr(a netip.AddrPort) (Backend, bool) {
	for _, b := range append(slices.Clone(backends), backends6...) {
		if b.Addr == a {
			return b, true
		}
	}
	return Backend{}, false
}

func TestProgRunTable(t *testing.T) {
	o := loadLB(t)
	for _, p := range []Protocol{ProtocolUDP, ProtocolTCP} {
		setService(t, o, uint32(p)%2, Service{VIP: vip, Protocol: p}, backends)
	}
	for _, p := range []Protocol{ProtocolUDP, ProtocolTCP} {
		setService(t, o, 2+uint32(p)%2, Service{VIP: vip6, Protocol: p}, backends6)
	}
	// The dead VIP's ring (4) is never written: every slot holds id 0.
	pointAt(t, o, Service{VIP: deadVIP, Protocol: ProtocolUDP}, 4)
	// An IPv6 VIP whose ring (0) holds IPv4 backends: refused, not rewritten.
	pointAt(t, o, Service{VIP: mixedVIP6, Protocol: ProtocolUDP}, 0)

	noCsum := frame.Build(toVIP(frame.ProtocolUDP, 1000))
	binary.BigEndian.PutUint16(noCsum[14+20+6:], 0)

	type rewrite int
	const (
		unchanged rewrite = iota // the frame must come out as it went in
		toBackend                // destination rewritten to a backend
		toClient                 // source rewritten back to the VIP
	)
	tests := []struct {
		name  string
		frame []byte
		want  uint32         // XDP verdict
		how   rewrite        // what must have changed
		from  netip.AddrPort // toClient: the VIP the reply must come from (default vip)
	}{
		{name: "udp to vip", frame: frame.Build(toVIP(frame.ProtocolUDP, 1000)), want: xdpPass, how: toBackend},
		{name: "tcp to vip", frame: frame.Build(toVIP(frame.ProtocolTCP, 1000)), want: xdpPass, how: toBackend},
		{name: "odd-length payload", frame: frame.Build(func() frame.Spec { s := toVIP(frame.ProtocolUDP, 7); s.Payload = []byte("abc"); return s }()), want: xdpPass, how: toBackend},
		{name: "one vlan tag", frame: frame.Build(func() frame.Spec { s := toVIP(frame.ProtocolUDP, 1001); s.VLANs = []uint16{5}; return s }()), want: xdpPass, how: toBackend},
		{name: "two vlan tags", frame: frame.Build(func() frame.Spec { s := toVIP(frame.ProtocolTCP, 1002); s.VLANs = []uint16{5, 6}; return s }()), want: xdpPass, how: toBackend},
		{name: "udp without checksum", frame: noCsum, want: xdpPass, how: toBackend},
		{name: "reply from backend", frame: frame.Build(frame.Spec{Src: backends[1].Addr.Addr(), Dst: client, Protocol: frame.ProtocolUDP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")}), want: xdpPass, how: toClient},
		{name: "tcp reply from backend", frame: frame.Build(frame.Spec{Src: backends[2].Addr.Addr(), Dst: client, Protocol: frame.ProtocolTCP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")}), want: xdpPass, how: toClient},
		{name: "backend address, other port", frame: frame.Build(frame.Spec{Src: backends[1].Addr.Addr(), Dst: client, Protocol: frame.ProtocolUDP, SrcPort: 22, DstPort: 1000}), want: xdpPass, how: unchanged},
		{name: "vip address, other port", frame: frame.Build(func() frame.Spec { s := toVIP(frame.ProtocolUDP, 1000); s.DstPort = 81; return s }()), want: xdpPass, how: unchanged},
		{name: "udp6 to vip", frame: frame.Build(toVIP6(frame.ProtocolUDP, 1000)), want: xdpPass, how: toBackend},
		{name: "tcp6 to vip, two vlan tags", frame: frame.Build(func() frame.Spec { s := toVIP6(frame.ProtocolTCP, 1003); s.VLANs = []uint16{8, 9}; return s }()), want: xdpPass, how: toBackend},
		{name: "udp6 reply from backend", frame: frame.Build(frame.Spec{Src: backends6[0].Addr.Addr(), Dst: client6, Protocol: frame.ProtocolUDP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")}), want: xdpPass, how: toClient, from: vip6},
		{name: "tcp6 reply from backend", frame: frame.Build(frame.Spec{Src: backends6[2].Addr.Addr(), Dst: client6, Protocol: frame.ProtocolTCP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")}), want: xdpPass, how: toClient, from: vip6},
		{name: "ipv6 vip with ipv4 backends", frame: frame.Build(frame.Spec{Src: client6, Dst: mixedVIP6.Addr(), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 80}), want: xdpDrop, how: unchanged},
		{name: "ipv6 vip, truncated payload length", frame: func() []byte {
			b := frame.Build(toVIP6(frame.ProtocolUDP, 1000))
			binary.BigEndian.PutUint16(b[14+4:], 4)
			return b
		}(), want: xdpPass, how: unchanged},
		{name: "ipv6 other traffic", frame: frame.Build(frame.Spec{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 80}), want: xdpPass, how: unchanged},
		{name: "vip without backends", frame: frame.Build(frame.Spec{Src: client, Dst: deadVIP.Addr(), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 80}), want: xdpDrop, how: unchanged},
		{name: "non-first fragment to vip", frame: frame.Build(func() frame.Spec { s := toVIP(frame.ProtocolUDP, 1000); s.FragmentOffset = 10; return s }()), want: xdpPass, how: unchanged},
		{name: "ihl below 5", frame: func() []byte { b := frame.Build(toVIP(frame.ProtocolUDP, 1000)); b[14] = 0x44; return b }(), want: xdpPass, how: unchanged},
		{name: "udp length beyond datagram", frame: func() []byte { b := frame.Build(toVIP(frame.ProtocolUDP, 1000)); b[14+20+4] = 0xff; return b }(), want: xdpPass, how: unchanged},
	}
	forwarded := uint64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := frame.Parse(tt.frame)
			if err != nil && tt.how != unchanged {
				t.Fatal(err)
			}
			ret, out := run(t, o.XdpLb, tt.frame)
			if ret != tt.want {
				t.Fatalf("verdict %d, want %d", ret, tt.want)
			}
			if tt.how == unchanged {
				if !bytes.Equal(out, tt.frame) {
					t.Fatalf("frame changed:\n in %x\nout %x", tt.frame, out)
				}
				return
			}
			got, err := frame.Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if !got.ChecksumsOK {
				t.Error("checksums invalid after rewrite")
			}
			if !bytes.Equal(got.Payload, in.Payload) || len(got.VLANs) != len(in.VLANs) || got.Protocol != in.Protocol {
				t.Errorf("payload, tags or protocol changed: %+v", got)
			}
			switch tt.how {
			case toBackend:
				if _, ok := backendByAddr(netip.AddrPortFrom(got.Dst, got.DstPort)); !ok {
					t.Errorf("destination %s:%d is no backend", got.Dst, got.DstPort)
				}
				if got.Src != in.Src || got.SrcPort != in.SrcPort {
					t.Errorf("source changed to %s:%d", got.Src, got.SrcPort)
				}
				forwarded++
			case toClient:
				want := vip
				if tt.from.IsValid() {
					want = tt.from
				}
				if netip.AddrPortFrom(got.Src, got.SrcPort) != want || got.Dst != in.Dst || got.DstPort != in.DstPort {
					t.Errorf("reply %s -> %s:%d, want from %s", netip.AddrPortFrom(got.Src, got.SrcPort), got.Dst, got.DstPort, want)
				}
			}
			if bytes.Equal(tt.frame, noCsum) && binary.BigEndian.Uint16(out[14+20+6:]) != 0 {
				t.Error("a UDP checksum of 0 (none) was rewritten")
			}
		})
	}
	// Every truncation of a frame to the VIP passes unchanged.
	full := frame.Build(toVIP(frame.ProtocolTCP, 1000))
	for n := 14; n < len(full); n++ {
		ret, out := run(t, o.XdpLb, full[:n])
		if ret != xdpPass || !bytes.Equal(out, full[:n]) {
			t.Errorf("truncated to %d bytes: verdict %d, changed %v", n, ret, !bytes.Equal(out, full[:n]))
		}
	}
	var total uint64
	for _, b := range append(slices.Clone(backends), backends6...) {
		var perCPU []Counter
		if err := o.BackendStats.Lookup(b.ID, &perCPU); err != nil {
			t.Fatal(err)
		}
		total += Sum(perCPU).Packets
	}
	if total != forwarded {
		t.Errorf("backend counters sum to %d, want %d forwarded frames", total, forwarded)
	}
}

func TestProgRunSpreadAndStickiness(t *testing.T) {
	o := loadLB(t)
	setService(t, o, 0, Service{VIP: vip, Protocol: ProtocolUDP}, backends)
	const flows = 3000
	count := map[netip.AddrPort]int{}
	for sport := uint16(10000); sport < 10000+flows; sport++ {
		in := frame.Build(toVIP(frame.ProtocolUDP, sport))
		_, out := run(t, o.XdpLb, in)
		first, _ := frame.Parse(out)
		_, again := run(t, o.XdpLb, in)
		second, _ := frame.Parse(again)
		if first.Dst != second.Dst {
			t.Fatalf("flow from port %d went to %s, then %s", sport, first.Dst, second.Dst)
		}
		count[netip.AddrPortFrom(first.Dst, first.DstPort)]++
	}
	// Each of 3 backends gets a third, within 10% (binomial sd is 1.5%).
	for _, b := range backends {
		if n := count[b.Addr]; n < flows/3*9/10 || n > flows/3*11/10 {
			t.Errorf("backend %s got %d of %d flows", b.Addr, n, flows)
		}
	}
}
