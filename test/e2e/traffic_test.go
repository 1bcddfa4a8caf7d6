package e2e

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/cmd/bpfleet/local"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/test/frame"
	"github.com/bpfleet/bpfleet/test/livetraffic"
	"github.com/bpfleet/bpfleet/test/netns"
)

// kernelTraffic is packet-of-death traffic from the kernel to one node: live
// frames sent by an XDP_TX program from the node's host-side veth end, and a
// UDP sink in the node's namespace counting what passed the filter.
type kernelTraffic struct {
	good, bad []byte
	src       *livetraffic.Source
	sink      *livetraffic.Sink
}

// newKernelTraffic prepares the source and the sink; call close when done.
func newKernelTraffic(t *testing.T, n *local.Node) *kernelTraffic {
	t.Helper()
	ns := &netns.NS{Name: n.NetNS}
	var nodeMAC net.HardwareAddr
	if err := ns.Do(t, func() error {
		iface, err := net.InterfaceByName(n.Interface)
		if err == nil {
			nodeMAC = iface.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	host, err := net.InterfaceByName(n.HostInterface)
	if err != nil {
		t.Fatal(err)
	}
	spec := frame.Spec{Src: n.HostAddr, Dst: n.Addr, Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: local.DeathPort}
	copy(spec.SrcMAC[:], host.HardwareAddr)
	copy(spec.DstMAC[:], nodeMAC)
	spec.Payload = []byte("hello from the kernel")
	good := frame.Build(spec)
	spec.Payload = append(append([]byte{}, local.DeathPattern...), " from the kernel"...)
	bad := frame.Build(spec)

	sink, err := livetraffic.ListenUDP(func(fn func() error) error { return ns.Do(t, fn) },
		netip.AddrPortFrom(n.Addr, local.DeathPort), local.DeathPattern)
	if err != nil {
		t.Fatal(err)
	}
	src, err := livetraffic.Open(n.HostInterface)
	if err != nil {
		_ = sink.Close()
		t.Fatal(err)
	}
	return &kernelTraffic{good: good, bad: bad, src: src, sink: sink}
}

func (k *kernelTraffic) close() {
	_ = k.src.Close()
	_ = k.sink.Close()
}

// filterDrops sums the packets the filter's rule 0 (the packet-of-death
// rule) matched, on every CPU, from the map the agent pinned for uid.
func filterDrops(t *testing.T, n *local.Node, uid types.UID) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: n.BPFFSRoot}.Map(uid, xdpfilter.HitsMap), nil)
	if err != nil {
		t.Fatalf("open pinned %s: %v", xdpfilter.HitsMap, err)
	}
	defer m.Close()
	var perCPU []xdpfilter.Counter
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		t.Fatalf("read %s: %v", xdpfilter.HitsMap, err)
	}
	return xdpfilter.Sum(perCPU).Packets
}
