package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/cmd/bpfleet/local"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/test/frame"
	"github.com/bpfleet/bpfleet/test/livetraffic"
	"github.com/bpfleet/bpfleet/test/netns"
	"github.com/bpfleet/bpfleet/test/privileged"
)

// The in-kernel source sends this many copies of each frame (good, death)
// per round, a round every millisecond or as fast as BPF_PROG_RUN returns
// (≈20 ms here): about 5,000 frames a second of each kind.
const (
	trafficBurst   = 256
	minTrafficSent = 10_000
)

// TestAgentKilledUnderTraffic: SIGKILL an agent while packets flow from an
// in-kernel source (live frames, XDP_TX on the host's veth end); its
// replacement re-adopts the pinned program without reloading it. The
// filter's own counter shows every packet of death met the filter, the
// node's socket shows none got through and no good packet was lost.
func TestAgentKilledUnderTraffic(t *testing.T) {
	e := requireEnv(t)
	k := newKillScenario(t, e, "e2e-restart")
	c := k.run(t)
	t.Logf("agent SIGKILLed and restarted under in-kernel traffic: %s", c)
	c.check(t)
	k.checkNotReloaded(t)
}

// BenchmarkAgentKilledUnderTraffic repeats TestAgentKilledUnderTraffic and
// reports what the traffic lost across each SIGKILL and restart.
func BenchmarkAgentKilledUnderTraffic(b *testing.B) {
	e := requireBenchEnv(b)
	k := newKillScenario(b, e, "bench-restart")
	var total trafficCount
	for b.Loop() {
		total = total.add(k.run(b))
	}
	total.check(b)
	k.checkNotReloaded(b)
	total.report(b)
}

// TestUpgradeUnderTraffic: a new bundle digest, then a rollback to the old
// one, while the in-kernel source sends: each swaps the program on the same
// link (Link.Update), and no packet is lost or unfiltered.
func TestUpgradeUnderTraffic(t *testing.T) {
	e := requireEnv(t)
	u := newUpgradeScenario(t, e, "e2e-upgrade-traffic")
	c := u.run(t)
	t.Logf("upgrade and rollback under in-kernel traffic: %s", c)
	c.check(t)
}

// BenchmarkUpgradeUnderTraffic repeats TestUpgradeUnderTraffic and reports
// what the traffic lost across each upgrade and rollback.
func BenchmarkUpgradeUnderTraffic(b *testing.B) {
	e := requireBenchEnv(b)
	u := newUpgradeScenario(b, e, "bench-upgrade")
	var total trafficCount
	for b.Loop() {
		total = total.add(u.run(b))
	}
	total.check(b)
	total.report(b)
}

func requireBenchEnv(b *testing.B) *local.Env {
	if env == nil {
		privileged.SkipOrFail(b, "end-to-end environment not running: %v", envErr)
	}
	return env
}

// filterNode applies the packet-of-death filter, named name, to one
// filter-labelled node only, waits until it is Attached, and returns the
// node and the BpfProgram as stored.
func filterNode(tb testing.TB, e *local.Env, name string) (*local.Node, *v1.BpfProgram) {
	tb.Helper()
	p, err := e.FilterProgram(name)
	if err != nil {
		tb.Fatal(err)
	}
	var n *local.Node
	for _, node := range e.Nodes {
		if node.Labels[local.FilterLabel] == "enabled" {
			n = node
			break
		}
	}
	p.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": n.Name}}
	apply(tb, e, p)
	if _, err := e.WaitReady(context.Background(), p.Name, 1, time.Minute); err != nil {
		tb.Fatal(err)
	}
	return n, p
}

// killScenario kills the node's agent process under traffic and starts a
// new one, which must re-adopt the pinned program.
type killScenario struct {
	e   *local.Env
	n   *local.Node
	p   *v1.BpfProgram
	id  uint32
	log string
}

func newKillScenario(tb testing.TB, e *local.Env, name string) *killScenario {
	tb.Helper()
	n, p := filterNode(tb, e, name)
	k := &killScenario{e: e, n: n, p: p, id: xdpProgramID(tb, n)}
	// The node's agent becomes a process we can kill.
	if err := e.StopAgent(n); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.StartAgent(n); err != nil {
			tb.Error(err)
		}
	})
	return k
}

func (k *killScenario) run(tb testing.TB) trafficCount {
	tb.Helper()
	return duringTraffic(tb, k.n, k.p.UID, func(*dropCounter) {
		agent := startAgentProcess(tb, k.e, k.n)
		time.Sleep(2 * time.Second)
		agent.kill(tb)
		time.Sleep(time.Second) // no agent at all: the pinned program keeps filtering
		agent = startAgentProcess(tb, k.e, k.n)
		time.Sleep(3 * time.Second)
		agent.kill(tb)
		k.log = agent.log.String()
	})
}

func (k *killScenario) checkNotReloaded(tb testing.TB) {
	tb.Helper()
	if got := xdpProgramID(tb, k.n); got != k.id {
		tb.Errorf("program reloaded across the restart: id %d → %d\nagent log:\n%s", k.id, got, k.log)
	}
	if en := entry(nodeState(tb, k.e, k.n.Name), k.p.Name); en == nil || en.ID != k.id || en.State != v1.PhaseAttached {
		tb.Errorf("node state after restart: %+v, want Attached id %d", en, k.id)
	}
}

// upgradeScenario moves a node's filter to a new bundle version and back
// under traffic.
type upgradeScenario struct {
	e      *local.Env
	n      *local.Node
	p      *v1.BpfProgram
	images [2]string // old, new
}

func newUpgradeScenario(tb testing.TB, e *local.Env, name string) *upgradeScenario {
	tb.Helper()
	n, p := filterNode(tb, e, name)
	v2 := bundleVersion(tb, e, filepath.Join(repoDir, "bpf", "xdpfilter"), "0.3.0")
	return &upgradeScenario{e: e, n: n, p: p, images: [2]string{p.Spec.Bundle.Image, v2.Ref}}
}

func (u *upgradeScenario) run(tb testing.TB) trafficCount {
	tb.Helper()
	ctx := context.Background()
	before := entry(nodeState(tb, u.e, u.n.Name), u.p.Name)
	return duringTraffic(tb, u.n, u.p.UID, func(drops *dropCounter) {
		time.Sleep(time.Second)
		last := before
		for _, image := range []string{u.images[1], u.images[0]} {
			var p v1.BpfProgram
			if err := u.e.Client.Get(ctx, client.ObjectKeyFromObject(u.p), &p); err != nil {
				tb.Fatal(err)
			}
			p.Spec.Bundle.Image = image
			if err := u.e.Client.Update(ctx, &p); err != nil {
				tb.Fatal(err)
			}
			var now *v1.ProgramState
			waitNodes(tb, u.e, fmt.Sprintf("%s runs %s", u.p.Name, image), func(s v1.BpfNodeState) bool {
				if s.Name != u.n.Name {
					return true
				}
				now = entry(s, u.p.Name)
				return now != nil && now.State == v1.PhaseAttached && now.Digest != last.Digest
			})
			drops.follow(tb)
			if now.LinkID != before.LinkID || now.ID == last.ID {
				tb.Errorf("%s: program %d → %d, link %d → %d; want a new program on the same link", image, last.ID, now.ID, before.LinkID, now.LinkID)
			}
			last = now
			time.Sleep(time.Second)
		}
	})
}

// trafficCount is what an in-kernel packet-of-death stream did across a
// disruption: good frames sent and delivered to the node's socket; death
// frames sent, dropped by the filter (its rule counter), and delivered.
type trafficCount struct {
	GoodSent, GoodArrived, DeathSent, DeathDropped, DeathArrived uint64
}

func (c trafficCount) add(o trafficCount) trafficCount {
	return trafficCount{c.GoodSent + o.GoodSent, c.GoodArrived + o.GoodArrived, c.DeathSent + o.DeathSent, c.DeathDropped + o.DeathDropped, c.DeathArrived + o.DeathArrived}
}

func (c trafficCount) String() string {
	return fmt.Sprintf("good %d sent, %d delivered; death %d sent, %d dropped by the filter, %d delivered",
		c.GoodSent, c.GoodArrived, c.DeathSent, c.DeathDropped, c.DeathArrived)
}

// check asserts no packet of death got through or past the filter's
// counter, and no good packet was lost.
func (c trafficCount) check(tb testing.TB) {
	tb.Helper()
	if c.GoodSent < minTrafficSent {
		tb.Errorf("only %d good frames sent; the disruption was not under traffic", c.GoodSent)
	}
	if c.DeathArrived != 0 {
		tb.Errorf("%d packets of death got through", c.DeathArrived)
	}
	if c.DeathDropped != c.DeathSent {
		tb.Errorf("the filter dropped %d packets of death of %d sent", c.DeathDropped, c.DeathSent)
	}
	if c.GoodArrived != c.GoodSent {
		tb.Errorf("lost %d good packets of %d", int64(c.GoodSent)-int64(c.GoodArrived), c.GoodSent)
	}
}

func (c trafficCount) report(b *testing.B) {
	b.ReportMetric(float64(c.DeathArrived+c.DeathSent-c.DeathDropped), "unfiltered-packets")
	b.ReportMetric(float64(c.GoodSent-min(c.GoodArrived, c.GoodSent)), "lost-packets")
	b.ReportMetric(float64(c.GoodSent+c.DeathSent), "packets-sent")
}

// duringTraffic runs disrupt while an in-kernel source sends good and death
// frames to n, from the host's end of its veth, and counts the outcome;
// disrupt tells drops when the filter's maps may have been replaced.
func duringTraffic(tb testing.TB, n *local.Node, uid types.UID, disrupt func(drops *dropCounter)) trafficCount {
	tb.Helper()
	ns := &netns.NS{Name: n.NetNS}
	enter := func(fn func() error) error { return ns.Do(tb, fn) }
	nodeMAC, err := livetraffic.HardwareAddr(enter, n.Interface)
	if err != nil {
		tb.Fatal(err)
	}
	hostMAC, err := livetraffic.HardwareAddr(nil, n.HostInterface)
	if err != nil {
		tb.Fatal(err)
	}
	spec := frame.Spec{Src: n.HostAddr, Dst: n.Addr, Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: local.DeathPort}
	copy(spec.SrcMAC[:], hostMAC)
	copy(spec.DstMAC[:], nodeMAC)
	spec.Payload = []byte("hello from the kernel")
	good := frame.Build(spec)
	spec.Payload = append(append([]byte{}, local.DeathPattern...), " from the kernel"...)
	death := frame.Build(spec)

	sink, err := livetraffic.ListenUDP(enter, netip.AddrPortFrom(n.Addr, local.DeathPort), local.DeathPattern)
	if err != nil {
		tb.Fatal(err)
	}
	defer sink.Close()
	src, err := livetraffic.Open(n.HostInterface)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()

	drops := newDropCounter(tb, n, uid)
	stream := src.Start(time.Millisecond, trafficBurst, nil, good, death)
	disrupt(drops)
	sent, err := stream.Stop()
	if err != nil {
		tb.Fatal(err)
	}
	arrived := sink.Settle(100 * time.Millisecond)
	drops.follow(tb)
	return trafficCount{
		GoodSent: sent[0], GoodArrived: arrived[1],
		DeathSent: sent[1], DeathDropped: drops.total(tb), DeathArrived: arrived[0],
	}
}

// dropCounter sums the packets the filter's rule 0 (the packet-of-death
// rule) matched, on every CPU, from the map the agent pinned for uid. An
// upgrade loads new maps: follow picks up the map now pinned, and the
// total is over every map seen, each held open until then.
type dropCounter struct {
	n     *local.Node
	uid   types.UID
	maps  map[ebpf.MapID]*ebpf.Map
	start uint64
}

func newDropCounter(tb testing.TB, n *local.Node, uid types.UID) *dropCounter {
	tb.Helper()
	d := &dropCounter{n: n, uid: uid, maps: map[ebpf.MapID]*ebpf.Map{}}
	tb.Cleanup(d.close)
	d.start = hits(tb, d.follow(tb))
	return d
}

// follow opens the map pinned now and returns it.
func (d *dropCounter) follow(tb testing.TB) *ebpf.Map {
	tb.Helper()
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: d.n.BPFFSRoot}.Map(d.uid, xdpfilter.HitsMap), nil)
	if err != nil {
		tb.Fatalf("open pinned %s: %v", xdpfilter.HitsMap, err)
	}
	info, err := m.Info()
	if err != nil {
		tb.Fatal(err)
	}
	id, _ := info.ID()
	if seen, ok := d.maps[id]; ok {
		m.Close()
		return seen
	}
	d.maps[id] = m
	return m
}

// total is the packets matched since newDropCounter, in every map seen.
func (d *dropCounter) total(tb testing.TB) uint64 {
	tb.Helper()
	var sum uint64
	for _, m := range d.maps {
		sum += hits(tb, m)
	}
	return sum - d.start
}

func (d *dropCounter) close() {
	for _, m := range d.maps {
		m.Close()
	}
}

func hits(tb testing.TB, m *ebpf.Map) uint64 {
	tb.Helper()
	var perCPU []xdpfilter.Counter
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		tb.Fatalf("read %s: %v", xdpfilter.HitsMap, err)
	}
	return xdpfilter.Sum(perCPU).Packets
}
