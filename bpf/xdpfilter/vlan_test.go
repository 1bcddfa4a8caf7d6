package xdpfilter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/netns"
)

// packetSocket opens an AF_PACKET socket bound to dev inside ns.
func packetSocket(t *testing.T, ns *netns.NS, dev string) (fd int, ifindex int, mac net.HardwareAddr) {
	t.Helper()
	err := ns.Do(t, func() error {
		iface, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		ifindex, mac = iface.Index, iface.HardwareAddr
		proto := int(binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, unix.ETH_P_ALL)))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifindex})
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", dev, err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd, ifindex, mac
}

// TestFilterTaggedFrames sends 802.1Q and QinQ tagged frames through the
// veth with a packet socket (VLAN devices need CONFIG_VLAN_8021Q, which
// test kernels may lack) and watches with a packet socket on the receiving
// end, which sees exactly the frames the filter passed.
func TestFilterTaggedFrames(t *testing.T) {
	tests := []struct {
		name  string
		mode  link.XDPAttachFlags
		vlans []uint16 // tags, outermost first
		v6    bool     // IPv6 instead of IPv4
	}{
		{name: "native one tag", mode: link.XDPDriverMode, vlans: []uint16{20}},
		{name: "native two tags ipv6", mode: link.XDPDriverMode, vlans: []uint16{100, 20}, v6: true},
		{name: "generic one tag ipv6", mode: link.XDPGenericMode, vlans: []uint16{20}, v6: true},
		{name: "generic two tags", mode: link.XDPGenericMode, vlans: []uint16{100, 20}},
	}
	rules := []Rule{{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, Pattern: []byte("DEATH")}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t, tt.mode, rules)
			txFD, txIndex, srcMAC := packetSocket(t, p.sender, p.veth.A)
			rxFD, _, dstMAC := packetSocket(t, p.receiver, p.veth.B)
			spec := frame.Spec{
				VLANs: tt.vlans, Src: netip.MustParseAddr("10.79.0.1"), Dst: netip.MustParseAddr("10.79.0.2"),
				Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: 9999,
			}
			if tt.v6 {
				spec.Src, spec.Dst = netip.MustParseAddr("fd79::1"), netip.MustParseAddr("fd79::2")
			}
			copy(spec.SrcMAC[:], srcMAC)
			copy(spec.DstMAC[:], dstMAC)
			const n = 10
			to := &unix.SockaddrLinklayer{Ifindex: txIndex, Halen: 6}
			copy(to.Addr[:], dstMAC)
			for i := range n {
				for _, payload := range []string{fmt.Sprintf("hello-%d", i), fmt.Sprintf("DEATH-%d", i)} {
					spec.Payload = []byte(payload)
					if err := unix.Sendto(txFD, frame.Build(spec), 0, to); err != nil {
						t.Fatal(err)
					}
				}
			}

			got := map[string]bool{}
			tv := unix.NsecToTimeval((300 * time.Millisecond).Nanoseconds())
			if err := unix.SetsockoptTimeval(rxFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			for {
				m, _, err := unix.Recvfrom(rxFD, buf, 0)
				if err != nil {
					break // timeout: nothing more arrives
				}
				f, err := frame.Parse(buf[:m])
				if err != nil || f.DstPort != 9999 {
					continue // neighbour discovery and the like
				}
				// After XDP ran, the receive path moves the outer tag into
				// the skb's metadata, before packet taps see the frame.
				if len(f.VLANs) != len(tt.vlans)-1 {
					t.Errorf("frame arrived with in-band tags %v, sent %v", f.VLANs, tt.vlans)
				}
				got[string(bytes.Clone(f.Payload))] = true
			}
			for i := range n {
				if !got[fmt.Sprintf("hello-%d", i)] || got[fmt.Sprintf("DEATH-%d", i)] {
					t.Fatalf("passed %v, want exactly hello-0..%d", got, n-1)
				}
			}
			if c := hits(t, p.objs.RuleHits, 0); c.Packets != n {
				t.Errorf("rule counted %d frames, want %d", c.Packets, n)
			}
		})
	}
}
