package xdplb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func TestEncodingMatchesC(t *testing.T) {
	decode := func(b []byte, v any) {
		t.Helper()
		if len(b) != binary.Size(v) {
			t.Fatalf("%T: encoded %d bytes, C struct has %d", v, len(b), binary.Size(v))
		}
		if err := binary.Read(bytes.NewReader(b), binary.NativeEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	be16 := func(p uint16) uint16 { return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, p)) }

	k, err := VIPKey(Service{VIP: netip.MustParseAddrPort("10.1.2.3:443"), Protocol: ProtocolTCP})
	if err != nil {
		t.Fatal(err)
	}
	var vk xdplbVipKey
	decode(k, &vk)
	if vk.Addr[0] != binary.NativeEndian.Uint32([]byte{10, 1, 2, 3}) || vk.Addr[1] != 0 || vk.Port != be16(443) || vk.Proto != 6 || vk.Family != 4 {
		t.Errorf("vip_key %+v", vk)
	}
	v, err := BackendValue(Backend{ID: 7, Addr: netip.MustParseAddrPort("[fd00::9]:8080")})
	if err != nil {
		t.Fatal(err)
	}
	var bv xdplbBackend
	decode(v, &bv)
	if bv.Addr[3] != binary.NativeEndian.Uint32([]byte{0, 0, 0, 9}) || bv.Port != be16(8080) || bv.Family != 6 || bv.Flags != 1 {
		t.Errorf("backend %+v", bv)
	}
	rk, _ := RealKey(Backend{ID: 7, Addr: netip.MustParseAddrPort("10.0.0.9:53")}, ProtocolUDP)
	var rkc xdplbRealKey
	decode(rk, &rkc)
	if rkc.Port != be16(53) || rkc.Proto != 17 || rkc.Family != 4 {
		t.Errorf("real_key %+v", rkc)
	}
	rv, _ := RealValue(Service{VIP: netip.MustParseAddrPort("10.9.9.9:53")})
	var rvc xdplbRealInfo
	decode(rv, &rvc)
	if rvc.VipPort != be16(53) || rvc.VipAddr[0] != binary.NativeEndian.Uint32([]byte{10, 9, 9, 9}) {
		t.Errorf("real_info %+v", rvc)
	}
	vv, _ := VIPValue(3)
	var vi xdplbVipInfo
	decode(vv, &vi)
	if vi.Ring != 3 {
		t.Errorf("vip_info %+v", vi)
	}
}

func TestEncodingRefuses(t *testing.T) {
	tests := []struct {
		name string
		f    func() error
	}{
		{name: "icmp service", f: func() error {
			_, err := VIPKey(Service{VIP: netip.MustParseAddrPort("10.0.0.1:1"), Protocol: 1})
			return err
		}},
		{name: "v4-mapped v6 vip", f: func() error {
			_, err := VIPKey(Service{VIP: netip.MustParseAddrPort("[::ffff:10.0.0.1]:1"), Protocol: ProtocolUDP})
			return err
		}},
		{name: "backend id 0", f: func() error {
			_, err := BackendValue(Backend{ID: 0, Addr: netip.MustParseAddrPort("10.0.0.1:1")})
			return err
		}},
		{name: "backend id too big", f: func() error {
			_, err := BackendValue(Backend{ID: MaxBackends, Addr: netip.MustParseAddrPort("10.0.0.1:1")})
			return err
		}},
		{name: "ring too big", f: func() error { _, err := VIPValue(MaxVIPs); return err }},
		{name: "mixed families", f: func() error {
			return Maps{}.SetService(0, Service{VIP: netip.MustParseAddrPort("10.0.0.1:80"), Protocol: ProtocolUDP},
				[]Backend{{ID: 1, Addr: netip.MustParseAddrPort("[fd00::1]:80")}}, make([]int, RingSize))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f(); !errors.Is(err, ErrInvalidService) {
				t.Fatalf("err = %v, want ErrInvalidService", err)
			}
		})
	}
}
