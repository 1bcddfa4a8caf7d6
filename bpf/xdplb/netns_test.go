package xdplb

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// lab is a client namespace, a load-balancer namespace running xdp_lb on
// all its interfaces, and backend namespaces that answer with their name.
//
//	client 10.200.0.2 --- 10.200.0.1 [lb] 10.201.i.1 --- 10.201.i.2 backend i
//	       fd20::2          fd20::1         fd21:i::1        fd21:i::2
type lab struct {
	client, lb *netns.NS
	backends   []*netns.NS
	objs       *xdplbObjects
}

func newLab(t *testing.T, n int, mode link.XDPAttachFlags) *lab {
	t.Helper()
	privileged.RequireBPFFS(t)
	ethtool := privileged.RequireCommand(t, "ethtool")
	l := &lab{client: newNS(t), lb: newNS(t), objs: loadLB(t)}
	l.lb.Exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.forwarding=1")
	front := netns.NewVeth(t, l.client, "10.200.0.2/24", l.lb, "10.200.0.1/24")
	l.client.Exec(t, "ip", "addr", "add", "fd20::2/64", "dev", front.A, "nodad")
	l.lb.Exec(t, "ip", "addr", "add", "fd20::1/64", "dev", front.B, "nodad")
	l.client.Exec(t, "ip", "route", "add", "default", "via", "10.200.0.1")
	l.client.Exec(t, "ip", "-6", "route", "add", "default", "via", "fd20::1")
	// Senders compute full checksums (no tx offload), as frames from a real
	// NIC carry them, and receivers verify them (no rx offload, which veth
	// would otherwise claim): a wrong rewrite of a checksum loses the flow.
	l.client.Exec(t, ethtool, "-K", front.A, "tx", "off", "rx", "off")
	lbIfaces := []string{front.B}
	for i := 1; i <= n; i++ {
		b := newNS(t)
		v := netns.NewVeth(t, l.lb, fmt.Sprintf("10.201.%d.1/24", i), b, fmt.Sprintf("10.201.%d.2/24", i))
		l.lb.Exec(t, "ip", "addr", "add", fmt.Sprintf("fd21:%d::1/64", i), "dev", v.A, "nodad")
		b.Exec(t, "ip", "addr", "add", fmt.Sprintf("fd21:%d::2/64", i), "dev", v.B, "nodad")
		b.Exec(t, "ip", "route", "add", "default", "via", fmt.Sprintf("10.201.%d.1", i))
		b.Exec(t, "ip", "-6", "route", "add", "default", "via", fmt.Sprintf("fd21:%d::1", i))
		b.Exec(t, ethtool, "-K", v.B, "tx", "off", "rx", "off")
		l.backends = append(l.backends, b)
		lbIfaces = append(lbIfaces, v.A)
		serveBackend(t, b, fmt.Sprintf("backend-%d", i))
	}
	for _, name := range lbIfaces {
		l.lb.Exec(t, "sysctl", "-qw", "net.ipv4.conf."+name+".rp_filter=0")
		err := l.lb.Do(t, func() error {
			iface, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			xl, err := link.AttachXDP(link.XDPOptions{Program: l.objs.XdpLb, Interface: iface.Index, Flags: mode})
			if err != nil {
				return err
			}
			t.Cleanup(func() { _ = xl.Close() })
			return nil
		})
		if err != nil {
			t.Fatalf("attach to %s: %v", name, err)
		}
	}
	return l
}

// newNS is a namespace whose interfaces skip duplicate address detection,
// so their IPv6 link-local addresses are usable for neighbour discovery
// at once.
func newNS(t *testing.T) *netns.NS {
	t.Helper()
	ns := netns.New(t)
	ns.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return ns
}

// serveBackend answers UDP and TCP on 8080 (IPv4 and IPv6) inside ns with name.
func serveBackend(t *testing.T, ns *netns.NS, name string) {
	t.Helper()
	for _, fam := range []string{"4", "6"} {
		serveBackendFamily(t, ns, name, fam)
	}
}

func serveBackendFamily(t *testing.T, ns *netns.NS, name, fam string) {
	t.Helper()
	err := ns.Do(t, func() error {
		uc, err := net.ListenPacket("udp"+fam, ":8080")
		if err != nil {
			return err
		}
		t.Cleanup(func() { _ = uc.Close() })
		tl, err := net.Listen("tcp"+fam, ":8080")
		if err != nil {
			return err
		}
		t.Cleanup(func() { _ = tl.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := uc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = uc.WriteTo([]byte(name), from)
			}
		}()
		go func() {
			for {
				c, err := tl.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte(name))
				_ = c.Close()
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// askUDP sends one request per source port to the VIP and returns which
// backend answered each; every answer must come from the VIP.
func (l *lab) askUDP(t *testing.T, ports []int) map[int]string {
	t.Helper()
	return l.askUDPAt(t, netip.MustParseAddr("10.200.0.2"), vip, ports)
}

func (l *lab) askUDPAt(t *testing.T, src netip.Addr, vip netip.AddrPort, ports []int) map[int]string {
	t.Helper()
	answers := map[int]string{}
	err := l.client.Do(t, func() error {
		buf := make([]byte, 64)
		for _, port := range ports {
			conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(port))))
			if err != nil {
				return err
			}
			_, err = conn.WriteToUDPAddrPort([]byte("who?"), vip)
			if err == nil {
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				var n int
				var from netip.AddrPort
				n, from, err = conn.ReadFromUDPAddrPort(buf)
				if err == nil && from != vip {
					err = fmt.Errorf("answer from %s, want %s", from, vip)
				}
				answers[port] = string(buf[:n])
			}
			_ = conn.Close()
			if err != nil {
				return fmt.Errorf("flow from port %d: %w", port, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return answers
}

func TestLoadBalancesRealFlows(t *testing.T) {
	for _, mode := range []struct {
		name string
		flag link.XDPAttachFlags
	}{{"native", link.XDPDriverMode}, {"generic", link.XDPGenericMode}} {
		t.Run(mode.name, func(t *testing.T) { testLoadBalancesRealFlows(t, mode.flag) })
	}
}

func testLoadBalancesRealFlows(t *testing.T, mode link.XDPAttachFlags) {
	l := newLab(t, 3, mode)
	udp, tcp := Service{VIP: vip, Protocol: ProtocolUDP}, Service{VIP: vip, Protocol: ProtocolTCP}
	table := setService(t, l.objs, 0, udp, backends)
	setService(t, l.objs, 1, tcp, backends)

	const flows = 600
	ports := make([]int, flows)
	for i := range ports {
		ports[i] = 20000 + i
	}
	before := l.askUDP(t, ports)
	share := map[string]int{}
	for _, b := range before {
		share[b]++
	}
	// Each backend gets a third of the flows, within 25% (about 4 sd).
	for i := 1; i <= 3; i++ {
		if n := share[fmt.Sprintf("backend-%d", i)]; n < flows/3*3/4 || n > flows/3*5/4 {
			t.Errorf("backend-%d answered %d of %d flows: %v", i, n, flows, share)
		}
	}
	t.Logf("flows per backend: %v", share)

	// A flow sticks to its backend.
	again := l.askUDP(t, ports[:50])
	for port, b := range again {
		if before[port] != b {
			t.Errorf("flow from port %d moved from %s to %s", port, before[port], b)
		}
	}

	// TCP through the VIP: full handshakes, answered by a backend.
	l.askTCP(t, vip)

	// IPv6: the same datapath serves an IPv6 VIP with IPv6 backends.
	setService(t, l.objs, 2, Service{VIP: vip6, Protocol: ProtocolUDP}, backends6)
	setService(t, l.objs, 3, Service{VIP: vip6, Protocol: ProtocolTCP}, backends6)
	share6 := map[string]int{}
	for _, b := range l.askUDPAt(t, netip.MustParseAddr("fd20::2"), vip6, ports[:150]) {
		share6[b]++
	}
	for i := 1; i <= 3; i++ {
		if n := share6[fmt.Sprintf("backend-%d", i)]; n < 150/3/2 {
			t.Errorf("IPv6: backend-%d answered %d of 150 flows: %v", i, n, share6)
		}
	}
	l.askTCP(t, vip6)
	t.Logf("IPv6 flows per backend: %v", share6)

	// Remove backend 2: only its flows move.
	survivors := []Backend{backends[0], backends[2]}
	next, err := MaglevRebuild(table, BackendNames(backends), BackendNames(survivors), RingSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := mapsOf(l.objs).SetService(0, udp, survivors, next); err != nil {
		t.Fatal(err)
	}
	after := l.askUDP(t, ports)
	moved := 0
	for port, b := range after {
		if b == before[port] {
			continue
		}
		moved++
		if before[port] != "backend-2" {
			t.Errorf("flow from port %d moved from surviving %s to %s", port, before[port], b)
		}
		if b == "backend-2" {
			t.Errorf("flow from port %d still reaches the removed backend", port)
		}
	}
	frac := float64(moved) / flows
	if moved != share["backend-2"] || frac < 0.25 || frac > 0.42 {
		t.Errorf("moved %d flows (%.3f), want exactly backend-2's %d, near 1/3", moved, frac, share["backend-2"])
	}
	t.Logf("removing 1 of 3 backends moved %d of %d flows (%.3f)", moved, flows, frac)
}

// askTCP opens ten connections to the VIP; each must be answered by a backend.
func (l *lab) askTCP(t *testing.T, vip netip.AddrPort) {
	t.Helper()
	if err := l.client.Do(t, func() error {
		for range 10 {
			c, err := net.DialTimeout("tcp", vip.String(), 2*time.Second)
			if err != nil {
				return err
			}
			buf := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			_ = c.Close()
			if err != nil || !strings.HasPrefix(string(buf[:n]), "backend-") {
				return fmt.Errorf("tcp answer %q: %v", buf[:n], err)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("tcp through %s: %v", vip, err)
	}
}
