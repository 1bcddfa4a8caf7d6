package xdpfilter

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/frame"
)

// fuzzRule drops UDP to 9999 with DEATH at payload offset 4.
var fuzzRule = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, PatternOffset: 4, Pattern: []byte("DEATH")}

// referenceVerdict is what fuzzRule must decide for frame b, computed
// independently of the C parser for the shapes it models: Ethernet with up
// to two tags, IPv4 without options or IPv6 without extension headers, and
// a UDP header. known is false for other well-formed shapes (IPv4 options,
// IPv6 extension headers), whose verdict it does not model. Anything
// truncated or inconsistent must pass.
func referenceVerdict(b []byte) (verdict uint32, known bool) {
	if len(b) < 14 {
		return xdpPass, true
	}
	off, et := 14, binary.BigEndian.Uint16(b[12:])
	for range 2 {
		if et != frame.EtherTypeVLAN && et != frame.EtherTypeQinQ {
			break
		}
		if len(b) < off+4 {
			return xdpPass, true
		}
		et = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	var l4, end int
	switch et {
	case frame.EtherTypeIPv4:
		if len(b) < off+20 {
			return xdpPass, true
		}
		ip := b[off:]
		ihl, tot := int(ip[0]&0xf)*4, int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0]>>4 != 4 || ihl < 20 || tot < ihl || off+tot > len(b) {
			return xdpPass, true
		}
		if ihl != 20 {
			return 0, false
		}
		if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 || ip[9] != frame.ProtocolUDP {
			return xdpPass, true
		}
		l4, end = off+20, off+tot
	case frame.EtherTypeIPv6:
		if len(b) < off+40 {
			return xdpPass, true
		}
		ip := b[off:]
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || off+40+plen > len(b) {
			return xdpPass, true
		}
		switch ip[6] {
		case 0, 43, 44, 60:
			return 0, false
		case frame.ProtocolUDP:
		default:
			return xdpPass, true
		}
		l4, end = off+40, off+40+plen
	default:
		return xdpPass, true
	}
	if l4+8 > end {
		return xdpPass, true
	}
	ulen := int(binary.BigEndian.Uint16(b[l4+4:]))
	if ulen < 8 || l4+ulen > end || binary.BigEndian.Uint16(b[l4+2:]) != 9999 {
		return xdpPass, true
	}
	payload := b[l4+8 : l4+ulen]
	if len(payload) >= 9 && bytes.Equal(payload[4:9], []byte("DEATH")) {
		return xdpDrop, true
	}
	return xdpPass, true
}

// FuzzFilterAgainstReference runs the filter on arbitrary frames and
// compares its verdict with referenceVerdict.
func FuzzFilterAgainstReference(f *testing.F) {
	objs := loadObjects(f, xdpPass, []Rule{fuzzRule})
	seed := func(s frame.Spec) { f.Add(frame.Build(s)) }
	seed(udp4(9999, "xxxxDEATH"))
	seed(udp4(9999, "xxxxDEATHyy"))
	seed(udp4(9999, "xxxxHEALTH"))
	seed(udp6(9999, "xxxxDEATH"))
	seed(with(udp4(9999, "xxxxDEATH"), func(s *frame.Spec) { s.VLANs = []uint16{1} }))
	seed(with(udp6(9999, "xxxxDEATH"), func(s *frame.Spec) { s.VLANs = []uint16{1, 2} }))
	seed(with(udp4(9999, "xxxxDEATH"), func(s *frame.Spec) { s.VLANs = []uint16{1, 2, 3} }))
	seed(tcp(v4a, v4b, 9999))
	f.Add(append(frame.Build(udp4(9999, "xxxxDEATH")), 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > 1500 {
			return // BPF_PROG_RUN wants an Ethernet header; keep frames to an MTU
		}
		got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: in})
		if err != nil {
			t.Fatal(err)
		}
		want, known := referenceVerdict(in)
		if got != xdpPass && got != xdpDrop {
			t.Fatalf("verdict %d", got)
		}
		if known && got != want {
			t.Fatalf("verdict %d, reference says %d for %x", got, want, in)
		}
	})
}
