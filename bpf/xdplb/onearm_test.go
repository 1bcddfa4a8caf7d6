package xdplb

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/frame"
)

const xdpTX = 3

// loadOneArmLB loads the program with ForwardActionConstant set to XDP_TX.
func loadOneArmLB(tb testing.TB) *xdplbObjects {
	tb.Helper()
	spec, err := Spec()
	if err != nil {
		tb.Fatal(err)
	}
	if err := spec.Variables[ForwardActionConstant].Set(uint32(xdpTX)); err != nil {
		tb.Fatal(err)
	}
	var objs xdplbObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { _ = objs.Close() })
	return &objs
}

// TestOneArmForwarding: with forward_action XDP_TX, every frame the
// default program rewrites and passes comes out rewritten the same way,
// with its Ethernet addresses swapped, as XDP_TX; every other frame gets
// the default program's verdict and leaves unchanged.
func TestOneArmForwarding(t *testing.T) {
	routed, oneArm := loadLB(t), loadOneArmLB(t)
	for _, o := range []*xdplbObjects{routed, oneArm} {
		setService(t, o, 0, Service{VIP: vip, Protocol: ProtocolUDP}, backends)
		setService(t, o, 1, Service{VIP: vip, Protocol: ProtocolTCP}, backends)
		setService(t, o, 2, Service{VIP: vip6, Protocol: ProtocolUDP}, backends6)
		pointAt(t, o, Service{VIP: deadVIP, Protocol: ProtocolUDP}, 4)
	}
	router := [6]byte{0x02, 0, 0, 0, 0, 0x01}
	lb := [6]byte{0x02, 0, 0, 0, 0, 0x02}
	fromRouter := func(s frame.Spec) []byte {
		s.SrcMAC, s.DstMAC = router, lb
		return frame.Build(s)
	}
	tests := []struct {
		name      string
		in        []byte
		rewritten bool
	}{
		{"udp to vip", fromRouter(toVIP(frame.ProtocolUDP, 1000)), true},
		{"tcp to vip", fromRouter(toVIP(frame.ProtocolTCP, 1000)), true},
		{"udp6 to vip", fromRouter(toVIP6(frame.ProtocolUDP, 1000)), true},
		{"udp to vip, one vlan tag", fromRouter(func() frame.Spec { s := toVIP(frame.ProtocolUDP, 1001); s.VLANs = []uint16{5}; return s }()), true},
		{"reply from backend", fromRouter(frame.Spec{Src: backends[1].Addr.Addr(), Dst: client, Protocol: frame.ProtocolUDP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")}), true},
		{"udp6 reply from backend", fromRouter(frame.Spec{Src: backends6[0].Addr.Addr(), Dst: client6, Protocol: frame.ProtocolUDP, SrcPort: 8080, DstPort: 1000, Payload: []byte("answer")}), true},
		{"vip address, other port", fromRouter(func() frame.Spec { s := toVIP(frame.ProtocolUDP, 1000); s.DstPort = 81; return s }()), false},
		{"other traffic", fromRouter(frame.Spec{Src: client, Dst: netip.MustParseAddr("10.9.9.9"), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 53}), false},
		{"vip without backends", fromRouter(frame.Spec{Src: client, Dst: deadVIP.Addr(), Protocol: frame.ProtocolUDP, SrcPort: 1, DstPort: 80}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantRet, want := run(t, routed.XdpLb, tt.in)
			ret, got := run(t, oneArm.XdpLb, tt.in)
			if !tt.rewritten {
				if ret != wantRet || !bytes.Equal(got, tt.in) {
					t.Fatalf("verdict %d (routed: %d), changed %v: want the routed verdict, unchanged", ret, wantRet, !bytes.Equal(got, tt.in))
				}
				return
			}
			if wantRet != xdpPass || bytes.Equal(want, tt.in) {
				t.Fatalf("routed program: verdict %d, changed %v: the case wants a rewritten, passed frame", wantRet, !bytes.Equal(want, tt.in))
			}
			if ret != xdpTX {
				t.Fatalf("verdict %d, want XDP_TX", ret)
			}
			if !bytes.Equal(got[0:6], router[:]) || !bytes.Equal(got[6:12], lb[:]) {
				t.Errorf("ethernet dst %x src %x, want back to the router: dst %x src %x", got[0:6], got[6:12], router, lb)
			}
			if !bytes.Equal(got[12:], want[12:]) {
				t.Errorf("rewrite differs from the routed program's:\n got %x\nwant %x", got[12:], want[12:])
			}
		})
	}
}
