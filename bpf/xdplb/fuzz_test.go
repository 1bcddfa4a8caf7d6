package xdplb

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/frame"
)

// FuzzRewriteKeepsChecksums runs the datapath on arbitrary frames: it
// never changes a frame's length, changes only frames to a VIP or from a
// backend, and a frame whose checksums were valid leaves with valid ones.
func FuzzRewriteKeepsChecksums(f *testing.F) {
	o := loadLB(f)
	for _, p := range []Protocol{ProtocolUDP, ProtocolTCP} {
		setService(f, o, uint32(p)%2, Service{VIP: vip, Protocol: p}, backends)
		setService(f, o, 2+uint32(p)%2, Service{VIP: vip6, Protocol: p}, backends6)
	}
	f.Add(frame.Build(toVIP(frame.ProtocolUDP, 1000)))
	f.Add(frame.Build(toVIP(frame.ProtocolTCP, 65535)))
	f.Add(frame.Build(toVIP6(frame.ProtocolUDP, 1)))
	f.Add(frame.Build(toVIP6(frame.ProtocolTCP, 4242)))
	f.Add(frame.Build(func() frame.Spec { s := toVIP(frame.ProtocolUDP, 7); s.VLANs = []uint16{3, 4}; return s }()))
	f.Add(frame.Build(frame.Spec{Src: backends[0].Addr.Addr(), Dst: client, Protocol: frame.ProtocolUDP, SrcPort: 8080, DstPort: 999, Payload: []byte("x")}))
	f.Add(frame.Build(frame.Spec{Src: backends6[1].Addr.Addr(), Dst: client6, Protocol: frame.ProtocolTCP, SrcPort: 8080, DstPort: 999, Payload: []byte("yz")}))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > 1500 {
			return
		}
		ret, out := run(t, o.XdpLb, in)
		if ret != xdpPass && ret != xdpDrop {
			t.Fatalf("verdict %d", ret)
		}
		if bytes.Equal(in, out) {
			return
		}
		before, err := frame.Parse(in)
		if err != nil || !plainHeaders(in, len(before.VLANs)) {
			return // shapes frame.Parse does not read (IP options, extension headers)
		}
		dst, src := netip.AddrPortFrom(before.Dst, before.DstPort), netip.AddrPortFrom(before.Src, before.SrcPort)
		_, fromBackend := backendByAddr(src)
		if dst != vip && dst != vip6 && !fromBackend {
			t.Fatalf("changed a frame neither to a VIP nor from a backend: %x", in)
		}
		after, err := frame.Parse(out)
		if err != nil {
			t.Fatalf("rewritten frame does not parse: %v", err)
		}
		if before.ChecksumsOK && !after.ChecksumsOK {
			t.Fatalf("valid checksums broken by the rewrite:\n in %x\nout %x", in, out)
		}
	})
}

// plainHeaders tells whether the IP header after tags VLAN tags has no
// options (IPv4) or is followed directly by TCP or UDP (IPv6), the shapes
// frame.Parse reads correctly.
func plainHeaders(b []byte, tags int) bool {
	l3 := 14 + 4*tags
	switch {
	case len(b) < l3+40:
		return len(b) >= l3+20 && b[l3]>>4 == 4 && b[l3]&0xf == 5
	case b[l3]>>4 == 4:
		return b[l3]&0xf == 5
	default:
		return b[l3+6] == frame.ProtocolTCP || b[l3+6] == frame.ProtocolUDP
	}
}
