package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/test/support/livetraffic/death"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
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
	c.Check(t)
	k.checkNotReloaded(t)
}

// BenchmarkAgentKilledUnderTraffic repeats TestAgentKilledUnderTraffic and
// reports what the traffic lost across each SIGKILL and restart.
func BenchmarkAgentKilledUnderTraffic(b *testing.B) {
	e := requireBenchEnv(b)
	k := newKillScenario(b, e, "bench-restart")
	var total death.Count
	for b.Loop() {
		total = total.Add(k.run(b))
	}
	total.Check(b)
	k.checkNotReloaded(b)
	total.Report(b)
}

// TestUpgradeUnderTraffic: a new bundle digest, then a rollback to the old
// one, while the in-kernel source sends: each swaps the program on the same
// link (Link.Update), and no packet is lost or unfiltered.
func TestUpgradeUnderTraffic(t *testing.T) {
	e := requireEnv(t)
	u := newUpgradeScenario(t, e, "e2e-upgrade-traffic")
	c := u.run(t)
	t.Logf("upgrade and rollback under in-kernel traffic: %s", c)
	c.Check(t)
}

// BenchmarkUpgradeUnderTraffic repeats TestUpgradeUnderTraffic and reports
// what the traffic lost across each upgrade and rollback.
func BenchmarkUpgradeUnderTraffic(b *testing.B) {
	e := requireBenchEnv(b)
	u := newUpgradeScenario(b, e, "bench-upgrade")
	var total death.Count
	for b.Loop() {
		total = total.Add(u.run(b))
	}
	total.Check(b)
	total.Report(b)
}

func requireBenchEnv(b *testing.B) *localenv.Env {
	if env == nil {
		privileged.SkipOrFail(b, "end-to-end environment not running: %v", envErr)
	}
	return env
}

// filterNode applies the packet-of-death filter, named name, to one
// filter-labelled node only, waits until it is Attached, and returns the
// node and the BpfProgram as stored.
func filterNode(tb testing.TB, e *localenv.Env, name string) (*localenv.Node, *v1.BpfProgram) {
	tb.Helper()
	p, err := e.FilterProgram(name)
	if err != nil {
		tb.Fatal(err)
	}
	var n *localenv.Node
	for _, node := range e.Nodes {
		if node.Labels[localenv.FilterLabel] == "enabled" {
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
	e   *localenv.Env
	n   *localenv.Node
	p   *v1.BpfProgram
	id  uint32
	log string
}

func newKillScenario(tb testing.TB, e *localenv.Env, name string) *killScenario {
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

func (k *killScenario) run(tb testing.TB) death.Count {
	tb.Helper()
	return duringTraffic(tb, k.n, k.p.UID, func(func()) {
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
	e      *localenv.Env
	n      *localenv.Node
	p      *v1.BpfProgram
	images [2]string // old, new
}

func newUpgradeScenario(tb testing.TB, e *localenv.Env, name string) *upgradeScenario {
	tb.Helper()
	n, p := filterNode(tb, e, name)
	v2 := bundleVersion(tb, e, filepath.Join(repoDir, "bpf", "xdpfilter"), "0.3.0")
	return &upgradeScenario{e: e, n: n, p: p, images: [2]string{p.Spec.Bundle.Image, v2.Ref}}
}

func (u *upgradeScenario) run(tb testing.TB) death.Count {
	tb.Helper()
	ctx := context.Background()
	before := entry(nodeState(tb, u.e, u.n.Name), u.p.Name)
	return duringTraffic(tb, u.n, u.p.UID, func(follow func()) {
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
			follow()
			if now.LinkID != before.LinkID || now.ID == last.ID {
				tb.Errorf("%s: program %d → %d, link %d → %d; want a new program on the same link", image, last.ID, now.ID, before.LinkID, now.LinkID)
			}
			last = now
			time.Sleep(time.Second)
		}
	})
}

// duringTraffic runs disrupt while an in-kernel source sends good and death
// frames to n, from the host's end of its veth, and counts the outcome.
func duringTraffic(tb testing.TB, n *localenv.Node, uid types.UID, disrupt func(follow func())) death.Count {
	tb.Helper()
	ns := &netns.NS{Name: n.NetNS}
	return death.During(tb, death.Path{
		SourceIface: n.HostInterface,
		FilterIface: n.Interface,
		FilterEnter: func(fn func() error) error { return ns.Do(tb, fn) },
		Src:         n.HostAddr, Dst: n.Addr, Port: localenv.DeathPort, Pattern: localenv.DeathPattern,
		HitsPin: func() string { return bpffs.Layout{Root: n.BPFFSRoot}.Map(uid, xdpfilter.HitsMap) },
	}, disrupt)
}
