package dataplane_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// counterWatch reads counters[0] of a BpfProgram through its pin, opened
// anew for each read (what a reader of the pin sees), as fast as it can,
// and remembers whether the value ever went down or the pin was missing.
type counterWatch struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	reads   int
	last    uint64
	dropped []string // "from -> to" for every decrease
	missing int      // reads that found no pin
}

func (e *env) watchCounter(t *testing.T, uid string) *counterWatch {
	t.Helper()
	w := &counterWatch{stop: make(chan struct{})}
	path := bpffs.Layout{Root: e.root}.Map(types.UID(uid), "counters")
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			var v uint64
			m, err := ebpf.LoadPinnedMap(path, nil)
			if err == nil {
				err = m.Lookup(uint32(0), &v)
				m.Close()
			}
			w.mu.Lock()
			w.reads++
			if err != nil {
				w.missing++
			} else {
				if v < w.last {
					w.dropped = append(w.dropped, itoa(int(w.last))+" -> "+itoa(int(v)))
				}
				w.last = v
			}
			w.mu.Unlock()
			time.Sleep(200 * time.Microsecond)
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *counterWatch) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// check fails the test if the counter went down or its pin was missing
// since the last check, and requires reads to have happened.
func (w *counterWatch) check(t *testing.T, during string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.dropped) > 0 || w.missing > 0 || w.reads == 0 {
		t.Fatalf("%s: counter went down %v, pin missing in %d of %d reads", during, w.dropped, w.missing, w.reads)
	}
	w.reads = 0
}

// mapID is the kernel id of a BpfProgram's pinned map.
func (e *env) mapID(t *testing.T, uid, name string) ebpf.MapID {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: e.root}.Map(types.UID(uid), name), nil)
	if err != nil {
		t.Fatalf("open map %s: %v", name, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("no map id")
	}
	return id
}

// TestPreservedMapAcrossUpgrades runs an XDP counter under UDP traffic
// flowing through a veth pair, and upgrades it to new digests whose bundle
// preserves the counters map: the counter never resets and its pin never
// disappears, across an in-process upgrade and one after an agent restart
// (the map re-adopted from its pin). A digest whose counters have another
// value size is refused with MapIncompatible, the old program attached and
// counting. The control: without preserve a new digest starts from zero.
func TestPreservedMapAcrossUpgrades(t *testing.T) {
	e := newEnv(t)
	uid := "keep-" + randHex(4)
	desired := func(digest string, obj []byte, preserve bool) apiDesired {
		ds := e.xdpDesired(t, uid, digest, obj, v1alpha1.XDPModeNative)
		if preserve {
			ds.Bundle = bundle(t, digest, obj).Preserve("counters")
		}
		return ds
	}
	d := e.open(t)
	v1 := one(t, d.Apply(ctx, parsed(desired("sha256:v1", kernelprog.Object, true))), uid)
	wantAttached(t, v1)
	mapV1 := e.mapID(t, uid, "counters")

	e.startTraffic(t, 7000) // not denied: passes and counts
	eventually(t, 5*time.Second, "packets counted", func() bool { return e.counter(t, uid, 0) > 1000 })
	w := e.watchCounter(t, uid)
	growsFrom := func(what string, from uint64) uint64 {
		t.Helper()
		eventually(t, 5*time.Second, what+": counter grows past "+itoa(int(from)), func() bool { return e.counter(t, uid, 0) > from+1000 })
		return e.counter(t, uid, 0)
	}

	// Upgrade in process: new program, same map.
	before := e.counter(t, uid, 0)
	v2 := one(t, d.Apply(ctx, parsed(desired("sha256:v2", kernelprog.ObjectV2, true))), uid)
	wantAttached(t, v2)
	if v2.ID == v1.ID || v2.Digest != "sha256:v2" {
		t.Fatalf("not upgraded: program %d -> %d, digest %s", v1.ID, v2.ID, v2.Digest)
	}
	if after := e.counter(t, uid, 0); after < before {
		t.Fatalf("counter reset by the upgrade: %d -> %d", before, after)
	}
	if id := e.mapID(t, uid, "counters"); id != mapV1 {
		t.Fatalf("counters map %d replaced by %d", mapV1, id)
	}
	n := growsFrom("after v2", before)
	w.check(t, "upgrade to v2")

	// Agent restart: the map comes back from its pin, and the next
	// upgrade re-uses it.
	_ = d.Close()
	d = e.open(t)
	v3 := one(t, d.Apply(ctx, parsed(desired("sha256:v3", kernelprog.Object, true))), uid)
	wantAttached(t, v3)
	if v3.ID == v2.ID || v3.Digest != "sha256:v3" {
		t.Fatalf("not upgraded after restart: program %d -> %d, digest %s", v2.ID, v3.ID, v3.Digest)
	}
	if id := e.mapID(t, uid, "counters"); id != mapV1 {
		t.Fatalf("counters map %d replaced by %d after a restart", mapV1, id)
	}
	n = growsFrom("after v3", n)
	w.check(t, "restart and upgrade to v3")

	// Incompatible: 16-byte counters. The node stays at v3, still counting.
	st := one(t, d.Apply(ctx, parsed(desired("sha256:wide", kernelprog.ObjectWide, true))), uid)
	if st.State != dataplane.StateFailed || st.Reason != v1alpha1.ReasonMapIncompatible || st.Digest != "sha256:wide" ||
		st.ID != v3.ID || st.LinkID != v3.LinkID {
		t.Fatalf("want Failed/MapIncompatible at sha256:wide with program %d still linked by %d, got %s/%s digest %s id %d link %d: %s",
			v3.ID, v3.LinkID, st.State, st.Reason, st.Digest, st.ID, st.LinkID, st.Message)
	}
	for _, want := range []string{"keeping sha256:v3 running", "preserved map counters", "value size 8, new version 16"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("message %q does not say %q", st.Message, want)
		}
	}
	if id := e.mapID(t, uid, "counters"); id != mapV1 {
		t.Fatalf("counters map %d replaced by %d on a refused upgrade", mapV1, id)
	}
	n = growsFrom("refused upgrade", n)
	w.check(t, "refused upgrade")
	// Applied again (the agent's resync), it stays refused: no silent
	// re-creation on a retry.
	if st := one(t, d.Resync(ctx), uid); st.Reason != v1alpha1.ReasonMapIncompatible || st.ID != v3.ID {
		t.Fatalf("resync: want MapIncompatible on program %d, got %s/%s id %d", v3.ID, st.State, st.Reason, st.ID)
	}
	w.halt()

	// Control: a bundle that does not preserve the map gets a new one,
	// which starts from zero (so the checks above can fail).
	v4 := one(t, d.Apply(ctx, parsed(desired("sha256:v4", kernelprog.ObjectV2, false))), uid)
	wantAttached(t, v4)
	if id := e.mapID(t, uid, "counters"); id == mapV1 {
		t.Fatal("without preserve the counters map was re-used")
	}
	if got := e.counter(t, uid, 0); got >= n {
		t.Fatalf("without preserve the counter did not restart: %d, was %d", got, n)
	}
	d.Apply(ctx, nil)
}

// TestPreservedMapEntries: a preserved map the running version lacks
// (nothing runs yet) is created; on a new digest the spec's map entries go
// into the preserved map, and the keys the spec no longer lists are deleted
// from it.
func TestPreservedMapEntries(t *testing.T) {
	e := newEnv(t)
	uid := "keepent-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	ds.Bundle = bundle(t, "sha256:v1", kernelprog.Object).Preserve("counters", "deny")
	d := e.open(t)
	wantAttached(t, one(t, d.Apply(ctx, parsed(ds)), uid))
	deny := e.mapID(t, uid, "deny")

	ds.Digest = "sha256:v2"
	ds.Bundle = bundle(t, "sha256:v2", kernelprog.ObjectV2).Preserve("counters", "deny")
	ds.Spec.MapEntries = []v1alpha1.MapEntry{{Map: "deny", Key: portKey(8001), Value: "01"}}
	wantAttached(t, one(t, d.Apply(ctx, parsed(ds)), uid))
	if id := e.mapID(t, uid, "deny"); id != deny {
		t.Fatalf("deny map %d replaced by %d", deny, id)
	}
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: e.root}.Map(types.UID(uid), "deny"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var v uint8
	if err := m.Lookup(uint16(8001), &v); err != nil || v != 1 {
		t.Fatalf("new rule 8001 not in the preserved map: %v %d", err, v)
	}
	if err := m.Lookup(uint16(9999), &v); err == nil {
		t.Fatal("rule 9999, no longer in the spec, still in the preserved map")
	}
	e.sendUDP(t, 8001, 5)
	if got := e.counter(t, uid, 1); got < 5 {
		t.Fatalf("%d drops after 5 packets to the new port", got)
	}
	d.Apply(ctx, nil)
}

// TestShippedFilterKeepsRuleHits upgrades the shipped XDP filter, built
// from bpf/xdpfilter and read back as a *format.Bundle, to a new digest
// (another version in bundle.yaml): its bundle.yaml preserves rule_hits,
// so the per-rule packet counter carries on from where it was.
func TestShippedFilterKeepsRuleHits(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join("..", "..", "bpf", "xdpfilter")
	v1, err := kernelprog.BuildBundle(ctx, src, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{build.SpecFile, "xdpfilter_bpfel.o"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == build.SpecFile {
			data = []byte(strings.Replace(string(data), "version: 0.1.0", "version: 0.1.1", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v2, err := kernelprog.BuildBundle(ctx, dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if v1.Digest == v2.Digest {
		t.Fatal("the two versions have one digest")
	}
	key, value, err := xdpfilter.Rule{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: 9999}.MapEntry(0)
	if err != nil {
		t.Fatal(err)
	}
	uid := "shipped-keep-" + randHex(3)
	desired := func(b *format.Bundle) apiDesired {
		return apiDesired{Name: "filter", UID: types.UID(uid), Digest: b.Digest, Bundle: b,
			Spec: v1alpha1.BpfProgramSpec{
				Programs:   []v1alpha1.ProgramAttachment{{Name: "xdp_pod_filter", XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}}}},
				MapEntries: []v1alpha1.MapEntry{{Map: "rules", Key: key, Value: value}},
			}}
	}
	hits := func() uint64 {
		t.Helper()
		m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: e.root}.Map(types.UID(uid), "rule_hits"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var perCPU []xdpfilter.Counter
		if err := m.Lookup(uint32(0), &perCPU); err != nil {
			t.Fatal(err)
		}
		return xdpfilter.Sum(perCPU).Packets
	}
	d := e.open(t)
	wantAttached(t, one(t, d.Apply(ctx, parsed(desired(v1))), uid))
	e.sendUDP(t, 9999, 20)
	before := hits()
	if before < 20 {
		t.Fatalf("rule 0 counted %d of 20 packets of death", before)
	}
	st := one(t, d.Apply(ctx, parsed(desired(v2))), uid)
	wantAttached(t, st)
	if st.Digest != v2.Digest {
		t.Fatalf("digest %s, want %s", st.Digest, v2.Digest)
	}
	if got := hits(); got != before {
		t.Fatalf("rule_hits[0] %d after the upgrade, was %d", got, before)
	}
	e.sendUDP(t, 9999, 20)
	if got := hits(); got < before+20 {
		t.Fatalf("rule_hits[0] %d after 20 more packets on the new version, was %d", got, before)
	}
	d.Apply(ctx, nil)
}

// TestPreservedMapPinRemoved: a preserved map whose pin was removed while
// the agent was down cannot be carried over; the reload creates it empty
// and says so (reason Tampered, naming the map) instead of silently.
func TestPreservedMapPinRemoved(t *testing.T) {
	e := newEnv(t)
	uid := "keeplost-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	ds.Bundle = bundle(t, "sha256:v1", kernelprog.Object).Preserve("counters")
	d := e.open(t)
	wantAttached(t, one(t, d.Apply(ctx, parsed(ds)), uid))
	e.sendUDP(t, 7000, 50) // the first few may wait on ARP and be dropped
	before := e.counter(t, uid, 0)
	if before < 20 {
		t.Fatalf("counter %d after 50 packets", before)
	}
	_ = d.Close()
	if err := os.Remove(bpffs.Layout{Root: e.root}.Map(types.UID(uid), "counters")); err != nil {
		t.Fatal(err)
	}
	d = e.open(t)
	st := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, st)
	if st.Reason != v1alpha1.ReasonTampered || !strings.Contains(st.Message, "preserved map counters was recorded but no longer pinned") {
		t.Fatalf("want Attached/Tampered naming the lost map, got %s/%s: %q", st.State, st.Reason, st.Message)
	}
	if got := e.counter(t, uid, 0); got >= before {
		t.Fatalf("counter %d, was %d: the lost map was not created anew", got, before)
	}
	d.Apply(ctx, nil)
}
