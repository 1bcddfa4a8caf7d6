package xdplb

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/frame"
)

// mix32 and refRingSlot restate the program's flow hash and ring slot
// (h % RingSize) in Go.
func mix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func refRingSlot(seed uint32, s frame.Spec) uint32 {
	words := func(a netip.Addr) (w [4]uint32) {
		b := a.AsSlice()
		for i := 0; i < len(b)/4; i++ {
			w[i] = binary.LittleEndian.Uint32(b[4*i:]) // a __be32 loaded on a little-endian CPU
		}
		return w
	}
	src, dst := words(s.Src), words(s.Dst)
	h := seed
	for i := range 4 {
		h = mix32(h ^ src[i])
		h = mix32(h ^ dst[i])
	}
	h = mix32(h ^ (uint32(bits.ReverseBytes16(s.SrcPort))<<16 | uint32(bits.ReverseBytes16(s.DstPort))))
	h = mix32(h ^ uint32(s.Protocol))
	return h % RingSize
}

// TestFlowGoesToItsRingSlot pins where each flow lands: with a ring whose
// every slot names a backend of its own residue, a flow goes to the
// backend of slot flow_hash % RingSize, computed in Go, for IPv4 and IPv6,
// UDP and TCP. Flows keep their backends across an upgrade only while this
// holds.
func TestFlowGoesToItsRingSlot(t *testing.T) {
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	var seed uint32
	if err := spec.Variables[HashSeedConstant].Get(&seed); err != nil {
		t.Fatal(err)
	}
	o := loadLB(t)
	const perFamily = 500
	families := []struct {
		ring  uint32
		vip   netip.AddrPort
		src   netip.Addr
		first uint32 // id of the backend of residue 0
		addr  func(i uint32) netip.Addr
	}{
		{0, vip, client, 1, func(i uint32) netip.Addr { return netip.AddrFrom4([4]byte{10, 202, byte(i >> 8), byte(i)}) }},
		{1, vip6, client6, 1 + perFamily, func(i uint32) netip.Addr {
			return netip.AddrFrom16([16]byte{0xfd, 0x22, 14: byte(i >> 8), 15: byte(i)})
		}},
	}
	byAddr := map[netip.Addr]uint32{}
	for _, f := range families {
		for i := range uint32(perFamily) {
			b := Backend{ID: f.first + i, Addr: netip.AddrPortFrom(f.addr(i), 8080)}
			v, err := BackendValue(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Backends.Update(b.ID, v, ebpf.UpdateAny); err != nil {
				t.Fatal(err)
			}
			byAddr[b.Addr.Addr()] = i
		}
		keys, ids := make([]uint32, RingSize), make([]uint32, RingSize)
		for slot := range uint32(RingSize) {
			keys[slot], ids[slot] = f.ring*RingSize+slot, f.first+slot%perFamily
		}
		if _, err := o.Rings.BatchUpdate(keys, ids, nil); err != nil {
			t.Fatal(err)
		}
		for _, p := range []Protocol{ProtocolUDP, ProtocolTCP} {
			pointAt(t, o, Service{VIP: f.vip, Protocol: p}, f.ring)
		}
	}
	for _, f := range families {
		for _, p := range []uint8{frame.ProtocolUDP, frame.ProtocolTCP} {
			for sport := uint16(1); sport < 3000; sport += 3 {
				s := frame.Spec{Src: f.src, Dst: f.vip.Addr(), Protocol: p, SrcPort: sport, DstPort: f.vip.Port(), Payload: []byte("x")}
				ret, out := run(t, o.XdpLb, frame.Build(s))
				got, err := frame.Parse(out)
				if ret != xdpPass || err != nil {
					t.Fatalf("verdict %d, parse %v", ret, err)
				}
				residue, ok := byAddr[got.Dst]
				want := refRingSlot(seed, s) % perFamily
				if !ok || residue != want {
					t.Fatalf("%s: went to %s (residue %d), want the backend of residue %d",
						fmt.Sprintf("%s:%d -> %s proto %d", s.Src, sport, f.vip, p), got.Dst, residue, want)
				}
			}
		}
	}
}
