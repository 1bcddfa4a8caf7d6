// Package frame builds and parses Ethernet frames (optional 802.1Q tags,
// IPv4 or IPv6, TCP or UDP) with correct checksums. The XDP programs' tests
// and benchmarks feed such frames to BPF_PROG_RUN and to live-frame traffic
// sources.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Ethertypes and protocol numbers used in frames.
const (
	EtherTypeIPv4   = 0x0800
	EtherTypeIPv6   = 0x86DD
	EtherTypeVLAN   = 0x8100
	EtherTypeQinQ   = 0x88A8
	ProtocolTCP     = 6
	ProtocolUDP     = 17
	ProtocolICMP    = 1
	ipv6FragmentHdr = 44
)

// ErrMalformed is returned by Parse for a frame it cannot read.
var ErrMalformed = errors.New("malformed frame")

// Spec describes a frame to build.
type Spec struct {
	// SrcMAC and DstMAC are the Ethernet addresses.
	SrcMAC, DstMAC [6]byte
	// VLANs are 802.1Q tags, outermost first; with two, the outer one is
	// an 802.1ad (QinQ) tag.
	VLANs []uint16
	// Src and Dst are the IP addresses; both IPv4 or both IPv6.
	Src, Dst netip.Addr
	// Protocol is ProtocolTCP or ProtocolUDP (others get no L4 header).
	Protocol uint8
	// SrcPort and DstPort are the transport ports.
	SrcPort, DstPort uint16
	// Payload follows the transport header.
	Payload []byte
	// FragmentOffset, in 8-byte units, makes an IPv4 frame (or an IPv6
	// frame, through a fragment header) a non-first fragment when not 0:
	// then the "transport header" bytes are just payload.
	FragmentOffset uint16
}

// Build returns the frame for s, with IPv4 header and TCP/UDP checksums set.
func Build(s Spec) []byte {
	b := make([]byte, 0, 128+len(s.Payload))
	b = append(b, s.DstMAC[:]...)
	b = append(b, s.SrcMAC[:]...)
	for i, vid := range s.VLANs {
		tpid := uint16(EtherTypeVLAN)
		if i == 0 && len(s.VLANs) > 1 {
			tpid = EtherTypeQinQ
		}
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, vid&0x0fff)
	}
	l4 := transport(s)
	if s.Src.Is4() {
		b = binary.BigEndian.AppendUint16(b, EtherTypeIPv4)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		binary.BigEndian.PutUint16(ip[6:], s.FragmentOffset&0x1fff)
		ip[8] = 64
		ip[9] = s.Protocol
		src, dst := s.Src.As4(), s.Dst.As4()
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		binary.BigEndian.PutUint16(ip[10:], ^sum16(0, ip))
		if s.FragmentOffset == 0 {
			setL4Checksum(l4, s.Protocol, pseudo4(src, dst, s.Protocol, len(l4)))
		}
		b = append(b, ip...)
		return append(b, l4...)
	}
	b = binary.BigEndian.AppendUint16(b, EtherTypeIPv6)
	ip := make([]byte, 40)
	ip[0] = 0x60
	next := s.Protocol
	var ext []byte
	if s.FragmentOffset != 0 {
		ext = make([]byte, 8)
		ext[0] = s.Protocol
		binary.BigEndian.PutUint16(ext[2:], s.FragmentOffset<<3)
		binary.BigEndian.PutUint32(ext[4:], 0xabcd)
		next = ipv6FragmentHdr
	}
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(l4)))
	ip[6] = next
	ip[7] = 64
	src, dst := s.Src.As16(), s.Dst.As16()
	copy(ip[8:], src[:])
	copy(ip[24:], dst[:])
	if s.FragmentOffset == 0 {
		setL4Checksum(l4, s.Protocol, pseudo6(src, dst, s.Protocol, len(l4)))
	}
	b = append(b, ip...)
	b = append(b, ext...)
	return append(b, l4...)
}

func transport(s Spec) []byte {
	var h []byte
	switch {
	case s.FragmentOffset != 0:
	case s.Protocol == ProtocolUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], s.SrcPort)
		binary.BigEndian.PutUint16(h[2:], s.DstPort)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(s.Payload)))
	case s.Protocol == ProtocolTCP:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], s.SrcPort)
		binary.BigEndian.PutUint16(h[2:], s.DstPort)
		binary.BigEndian.PutUint32(h[4:], 1)
		h[12] = 5 << 4
		h[13] = 0x18 // PSH|ACK
		binary.BigEndian.PutUint16(h[14:], 65535)
	}
	return append(h, s.Payload...)
}

func setL4Checksum(l4 []byte, proto uint8, pseudo uint32) {
	switch proto {
	case ProtocolUDP:
		c := ^sum16(pseudo, l4)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case ProtocolTCP:
		binary.BigEndian.PutUint16(l4[16:], ^sum16(pseudo, l4))
	}
}

func pseudo4(src, dst [4]byte, proto uint8, n int) uint32 {
	var s uint32
	for i := 0; i < 4; i += 2 {
		s += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	return s + uint32(proto) + uint32(n)
}

func pseudo6(src, dst [16]byte, proto uint8, n int) uint32 {
	var s uint32
	for i := 0; i < 16; i += 2 {
		s += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	return s + uint32(proto) + uint32(n)
}

// sum16 is the folded one's complement sum of b, starting from initial.
func sum16(initial uint32, b []byte) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Parsed is what Parse reads back from a frame.
type Parsed struct {
	// VLANs are the VLAN ids, outermost first.
	VLANs []uint16
	// Src and Dst are the IP addresses.
	Src, Dst netip.Addr
	// Protocol is the transport protocol.
	Protocol uint8
	// SrcPort and DstPort are the transport ports (TCP and UDP).
	SrcPort, DstPort uint16
	// Payload is what follows the transport header.
	Payload []byte
	// ChecksumsOK tells whether the IPv4 header checksum and the TCP/UDP
	// checksum are valid.
	ChecksumsOK bool
}

// Parse reads a frame built like Build does (no IP options, no IPv6
// extension headers) and verifies its checksums.
func Parse(b []byte) (Parsed, error) {
	var p Parsed
	if len(b) < 14 {
		return p, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	for et == EtherTypeVLAN || et == EtherTypeQinQ {
		if len(b) < off+6 {
			return p, fmt.Errorf("%w: truncated VLAN tag", ErrMalformed)
		}
		p.VLANs = append(p.VLANs, binary.BigEndian.Uint16(b[off+2:])&0x0fff)
		off += 4
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	var l4 []byte
	var pseudo uint32
	switch et {
	case EtherTypeIPv4:
		if len(b) < off+20 {
			return p, fmt.Errorf("%w: truncated IPv4 header", ErrMalformed)
		}
		ip := b[off:]
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot < 20 || tot > len(ip) {
			return p, fmt.Errorf("%w: IPv4 total length %d", ErrMalformed, tot)
		}
		p.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
		p.Protocol = ip[9]
		p.ChecksumsOK = sum16(0, ip[:20]) == 0xffff
		l4 = ip[20:tot]
		pseudo = pseudo4([4]byte(ip[12:16]), [4]byte(ip[16:20]), p.Protocol, len(l4))
	case EtherTypeIPv6:
		if len(b) < off+40 {
			return p, fmt.Errorf("%w: truncated IPv6 header", ErrMalformed)
		}
		ip := b[off:]
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+plen > len(ip) {
			return p, fmt.Errorf("%w: IPv6 payload length %d", ErrMalformed, plen)
		}
		p.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
		p.Protocol = ip[6]
		p.ChecksumsOK = true
		l4 = ip[40 : 40+plen]
		pseudo = pseudo6([16]byte(ip[8:24]), [16]byte(ip[24:40]), p.Protocol, len(l4))
	default:
		return p, fmt.Errorf("%w: ethertype %#04x", ErrMalformed, et)
	}
	switch p.Protocol {
	case ProtocolUDP:
		if len(l4) < 8 {
			return p, fmt.Errorf("%w: truncated UDP header", ErrMalformed)
		}
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		p.Payload = l4[8:]
		if binary.BigEndian.Uint16(l4[6:]) != 0 {
			p.ChecksumsOK = p.ChecksumsOK && sum16(pseudo, l4) == 0xffff
		}
	case ProtocolTCP:
		if len(l4) < 20 || int(l4[12]>>4)*4 > len(l4) {
			return p, fmt.Errorf("%w: truncated TCP header", ErrMalformed)
		}
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		p.Payload = l4[int(l4[12]>>4)*4:]
		p.ChecksumsOK = p.ChecksumsOK && sum16(pseudo, l4) == 0xffff
	}
	return p, nil
}
