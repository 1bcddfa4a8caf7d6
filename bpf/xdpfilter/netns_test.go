package xdpfilter

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// pair is a sender namespace and a receiver namespace joined by a veth,
// with the filter attached to the receiver's end.
type pair struct {
	sender, receiver *netns.NS
	veth             *netns.Veth
	objs             *xdpfilterObjects
	xdp              link.Link
}

const (
	senderV4, receiverV4 = "10.77.0.1", "10.77.0.2"
	senderV6, receiverV6 = "fd77::1", "fd77::2"
)

func newPair(t *testing.T, mode link.XDPAttachFlags, rules []Rule) *pair {
	t.Helper()
	privileged.RequireBPFFS(t)
	p := &pair{sender: netns.New(t), receiver: netns.New(t)}
	p.veth = netns.NewVeth(t, p.sender, senderV4+"/24", p.receiver, receiverV4+"/24")
	p.sender.Exec(t, "ip", "addr", "add", senderV6+"/64", "dev", p.veth.A, "nodad")
	p.receiver.Exec(t, "ip", "addr", "add", receiverV6+"/64", "dev", p.veth.B, "nodad")
	p.objs = loadObjects(t, xdpPass, rules)
	err := p.receiver.Do(t, func() error {
		iface, err := net.InterfaceByName(p.veth.B)
		if err != nil {
			return err
		}
		p.xdp, err = link.AttachXDP(link.XDPOptions{Program: p.objs.XdpPodFilter, Interface: iface.Index, Flags: mode})
		return err
	})
	if err != nil {
		t.Fatalf("attach xdp: %v", err)
	}
	t.Cleanup(func() { _ = p.xdp.Close() })
	return p
}

// listenUDP opens a UDP socket inside ns.
func listenUDP(t *testing.T, ns *netns.NS, network, addr string) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := ns.Do(t, func() error {
		a, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return err
		}
		conn, err = net.ListenUDP(network, a)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// received reads datagrams until none arrives for 500 ms.
func received(t *testing.T, conn *net.UDPConn) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	buf := make([]byte, 2048)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := conn.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got[string(buf[:n])] = true
	}
}

// sendUDP sends each payload in its own datagram from the sender namespace.
func (p *pair) sendUDP(t *testing.T, network, dst string, payloads []string) {
	t.Helper()
	err := p.sender.Do(t, func() error {
		conn, err := net.Dial(network, dst)
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, pl := range payloads {
			if _, err := conn.Write([]byte(pl)); err != nil {
				return err
			}
			time.Sleep(time.Millisecond) // stay far below any queue limit
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (p *pair) dialTCP(t *testing.T, addr string, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	var conn net.Conn
	err := p.sender.Do(t, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return conn, err
}

func TestFilterRealTraffic(t *testing.T) {
	modes := []struct {
		name string
		flag link.XDPAttachFlags
	}{
		{name: "native", flag: link.XDPDriverMode},
		{name: "generic", flag: link.XDPGenericMode},
	}
	rules := []Rule{
		// 0: UDP to 9999 whose payload starts with DEATH.
		{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, Pattern: []byte("DEATH")},
		// 1: TCP to 6666.
		{Action: ActionDrop, Protocol: ProtocolTCP, DstPort: 6666},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			p := newPair(t, mode.flag, rules)
			for _, fam := range []struct {
				network, addr string
			}{{"udp4", receiverV4}, {"udp6", receiverV6}} {
				conn := listenUDP(t, p.receiver, fam.network, net.JoinHostPort(fam.addr, "9999"))
				p.sendUDP(t, fam.network, net.JoinHostPort(fam.addr, "9999"), []string{"warm-up"}) // resolves neighbours
				if got := received(t, conn); !got["warm-up"] {
					t.Fatalf("%s: warm-up datagram not received", fam.network)
				}
				var all []string
				want := map[string]bool{}
				for i := range 20 {
					good, bad := fmt.Sprintf("hello-%d", i), fmt.Sprintf("DEATH-%d", i)
					all = append(all, good, bad)
					want[good] = true
				}
				p.sendUDP(t, fam.network, net.JoinHostPort(fam.addr, "9999"), all)
				got := received(t, conn)
				if len(got) != len(want) {
					t.Errorf("%s: received %d datagrams, want the %d good ones: %v", fam.network, len(got), len(want), got)
				}
				for g := range want {
					if !got[g] {
						t.Errorf("%s: good datagram %q was dropped", fam.network, g)
					}
				}
			}
			if c := hits(t, p.objs.RuleHits, 0); c.Packets != 40 {
				t.Errorf("rule 0 counted %d packets, want 40 (20 IPv4 + 20 IPv6)", c.Packets)
			}

			// TCP: a SYN to 6666 never arrives; 6667 works.
			var ln net.Listener
			if err := p.receiver.Do(t, func() error {
				var err error
				ln, err = net.Listen("tcp", ":6667")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_, _ = c.Write([]byte("ok"))
					_ = c.Close()
				}
			}()
			for _, addr := range []string{receiverV4, receiverV6} {
				if conn, err := p.dialTCP(t, net.JoinHostPort(addr, "6666"), 500*time.Millisecond); err == nil {
					_ = conn.Close()
					t.Errorf("TCP to [%s]:6666 connected through the filter", addr)
				}
				conn, err := p.dialTCP(t, net.JoinHostPort(addr, "6667"), 5*time.Second)
				if err != nil {
					t.Fatalf("TCP to [%s]:6667: %v", addr, err)
				}
				buf := make([]byte, 2)
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Read(buf); err != nil || string(buf) != "ok" {
					t.Errorf("TCP to [%s]:6667 read %q, %v", addr, buf, err)
				}
				_ = conn.Close()
			}
			if c := hits(t, p.objs.RuleHits, 1); c.Packets < 2 {
				t.Errorf("rule 1 counted %d SYNs, want at least 2", c.Packets)
			}

			// A rule written into the map at run time applies to the next packet.
			before := progID(t, p.xdp)
			conn := listenUDP(t, p.receiver, "udp4", net.JoinHostPort(receiverV4, "9998"))
			p.sendUDP(t, "udp4", net.JoinHostPort(receiverV4, "9998"), []string{"before-rule"})
			if got := received(t, conn); !got["before-rule"] {
				t.Fatal("datagram to 9998 dropped before any rule covered it")
			}
			writeRule(t, p.objs.Rules, 2, Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9998})
			p.sendUDP(t, "udp4", net.JoinHostPort(receiverV4, "9998"), []string{"a", "b", "c"})
			if got := received(t, conn); len(got) != 0 {
				t.Errorf("after the new rule, received %v", got)
			}
			if c := hits(t, p.objs.RuleHits, 2); c.Packets != 3 {
				t.Errorf("new rule counted %d packets, want 3", c.Packets)
			}
			if after := progID(t, p.xdp); after != before {
				t.Errorf("program id changed from %d to %d", before, after)
			}
		})
	}
}

func progID(t *testing.T, l link.Link) uint32 {
	t.Helper()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return uint32(info.Program)
}

// TestFilterJumboFramesGeneric matches a pattern 18000 bytes into a 20000
// byte datagram, past the range the parser reads in place, with generic XDP
// on a veth with a 64000 byte MTU: the filter copies the bytes out with
// bpf_xdp_load_bytes instead.
func TestFilterJumboFramesGeneric(t *testing.T) {
	const offset = 18000
	rules := []Rule{{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, PatternOffset: offset, Pattern: []byte("DEATH")}}
	p := newPair(t, link.XDPGenericMode, rules)
	p.sender.Exec(t, "ip", "link", "set", "dev", p.veth.A, "mtu", "64000")
	p.receiver.Exec(t, "ip", "link", "set", "dev", p.veth.B, "mtu", "64000")
	conn := listenUDP(t, p.receiver, "udp4", net.JoinHostPort(receiverV4, "9999"))
	datagram := func(tag string, marker string) string {
		b := make([]byte, 20000)
		copy(b, tag)
		copy(b[offset:], marker)
		return string(b)
	}
	var all []string
	for i := range 5 {
		all = append(all, datagram(fmt.Sprintf("good-%d", i), "HEALTHY"), datagram(fmt.Sprintf("bad-%d", i), "DEATH"))
	}
	p.sendUDP(t, "udp4", net.JoinHostPort(receiverV4, "9999"), all)
	got := map[string]bool{}
	for d := range received(t, conn) {
		got[strings.TrimRight(d[:16], "\x00")] = true
	}
	for i := range 5 {
		if !got[fmt.Sprintf("good-%d", i)] || got[fmt.Sprintf("bad-%d", i)] {
			t.Fatalf("received %v, want exactly good-0..4", got)
		}
	}
	if c := hits(t, p.objs.RuleHits, 0); c.Packets != 5 {
		t.Errorf("rule counted %d frames, want 5", c.Packets)
	}
}
