package dataplane_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/netns"
)

var ctx = context.Background()

// TestReadoptAndUpgradeUnderTraffic restarts the agent and then upgrades the
// filter while packets of death flow: none may get through.
func TestReadoptAndUpgradeUnderTraffic(t *testing.T) {
	e := newEnv(t)
	uid := "readopt-" + randHex(4)
	v1 := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)

	d := e.open(t)
	first := one(t, d.Apply(ctx, parsed(v1)), uid)
	wantAttached(t, first)
	tr := e.startTraffic(t, 9999)
	eventually(t, 2*time.Second, "drops", func() bool { return e.counter(t, uid, 1) > 10 })

	// Agent restart: close (never detaches), open again on the same root.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d = e.open(t)
	// A resync before the first Apply knows no desired set: it removes nothing.
	if st := d.Resync(ctx); len(st) != 1 || st[0].LinkID != first.LinkID {
		t.Fatalf("resync before Apply: %+v", st)
	}
	again := one(t, d.Apply(ctx, parsed(v1)), uid)
	t.Logf("re-adopt (New + Apply) took %s", time.Since(start))
	wantAttached(t, again)
	if again.ID != first.ID || again.LinkID != first.LinkID {
		t.Fatalf("re-adopt reloaded: program %d -> %d, link %d -> %d", first.ID, again.ID, first.LinkID, again.LinkID)
	}

	// Upgrade: same link, new program.
	v2 := e.xdpDesired(t, uid, "sha256:v2", kernelprog.ObjectV2, v1alpha1.XDPModeNative)
	start = time.Now()
	up := one(t, d.Apply(ctx, parsed(v2)), uid)
	t.Logf("upgrade Apply (load + Link.Update) took %s", time.Since(start))
	wantAttached(t, up)
	if up.LinkID != first.LinkID || up.ID == first.ID || up.Tag == first.Tag || up.Digest != "sha256:v2" {
		t.Fatalf("upgrade: link %d -> %d (want same), program %d -> %d, tag %s -> %s (want new), digest %s",
			first.LinkID, up.LinkID, first.ID, up.ID, first.Tag, up.Tag, up.Digest)
	}
	// The old program is gone: nobody holds it any more.
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(first.ID)); err == nil {
		p.Close()
		t.Fatalf("old program %d still loaded after the upgrade", first.ID)
	}
	eventually(t, 2*time.Second, "drops by v2", func() bool { return e.counter(t, uid, 1) > 10 })

	// Rollback the same way.
	back := one(t, d.Apply(ctx, parsed(v1)), uid)
	wantAttached(t, back)
	if back.LinkID != first.LinkID || back.Tag != first.Tag {
		t.Fatalf("rollback: link %d -> %d, tag %s, want %s", first.LinkID, back.LinkID, back.Tag, first.Tag)
	}
	eventually(t, 2*time.Second, "drops after rollback", func() bool { return e.counter(t, uid, 1) > 10 })

	eventually(t, 10*time.Second, "1000 packets sent", func() bool { return tr.sent.Load() >= 1000 })
	sent, got := tr.sent.Load(), tr.received.Load()
	t.Logf("sent %d packets of death, %d got through", sent, got)
	if sent < 1000 {
		t.Fatalf("only %d packets sent: the test proved nothing", sent)
	}
	if got != 0 {
		t.Fatalf("%d packets got through across restart, upgrade and rollback", got)
	}
	// Control: without the rule the same traffic reaches the receiver.
	v1.Spec.MapEntries = nil
	wantAttached(t, one(t, d.Apply(ctx, parsed(v1)), uid))
	eventually(t, 2*time.Second, "packets through once the rule is gone", func() bool { return tr.received.Load() > 0 })
	tr.halt()
}

// TestReboot feeds a new boot id after the pins were wiped: everything is
// loaded again.
func TestReboot(t *testing.T) {
	e := newEnv(t)
	uid := "reboot-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	d := e.open(t)
	before := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, before)
	_ = d.Close()
	if err := os.RemoveAll(e.root); err != nil { // what a reboot does to bpffs
		t.Fatal(err)
	}

	d = e.open(t, func(o *dataplane.Options) { o.BootID = "boot-2" })
	if d.Kernel().BootID != "boot-2" {
		t.Fatalf("kernel info has boot id %q", d.Kernel().BootID)
	}
	after := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, after)
	if after.ID == before.ID || after.LinkID == before.LinkID {
		t.Fatalf("want a fresh load after reboot: program %d -> %d, link %d -> %d", before.ID, after.ID, before.LinkID, after.LinkID)
	}
	if _, err := os.Stat(bpffs.Layout{Root: e.root}.Link(types.UID(uid), kernelprog.XDPFilter, after.AttachPoint)); err != nil {
		t.Fatalf("link not pinned again: %v", err)
	}
}

// TestTampered replaces the pinned program while the agent is down: the
// restarted agent notices the tag, reports Tampered and reloads.
func TestTampered(t *testing.T) {
	e := newEnv(t)
	uid := "tamper-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	d := e.open(t)
	before := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, before)
	_ = d.Close()

	// Pin another program where ours was.
	pin := bpffs.Layout{Root: e.root}.Program(types.UID(uid), kernelprog.XDPFilter)
	intruder := loadIntruder(t)
	if err := os.Remove(pin); err != nil {
		t.Fatal(err)
	}
	if err := intruder.Pin(pin); err != nil {
		t.Fatal(err)
	}

	d = e.open(t)
	after := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, after)
	if after.Reason != v1alpha1.ReasonTampered || after.Tag != before.Tag || after.ID == before.ID || after.LinkID != before.LinkID {
		t.Fatalf("want Tampered, reloaded (tag %s, new id), same link %d; got %s tag %s id %d link %d: %s",
			before.Tag, before.LinkID, after.Reason, after.Tag, after.ID, after.LinkID, after.Message)
	}
	// The notice stays until the next regular load.
	if st := one(t, d.Apply(ctx, parsed(ds)), uid); st.Reason != v1alpha1.ReasonTampered {
		t.Fatalf("notice gone before the next load: %s", st.Reason)
	}
	next := e.xdpDesired(t, uid, "sha256:v2", kernelprog.ObjectV2, v1alpha1.XDPModeGeneric)
	if st := one(t, d.Apply(ctx, parsed(next)), uid); st.Reason != v1alpha1.ReasonAttached {
		t.Fatalf("notice kept after a regular upgrade: %s", st.Reason)
	}
}

// loadIntruder loads the test object's XDP_PASS program, as someone
// tampering with bpfleet's pins would; it is closed when the test ends.
func loadIntruder(t *testing.T) *ebpf.Program {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpecFromReader(strings.NewReader(string(kernelprog.Object)))
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Maps: spec.Maps, Programs: map[string]*ebpf.ProgramSpec{kernelprog.XDPPass: spec.Programs[kernelprog.XDPPass]}, Variables: spec.Variables, Types: spec.Types}, ebpf.CollectionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(coll.Close)
	return coll.Programs[kernelprog.XDPPass]
}

// TestTamperedWhileRunning: someone swaps the program of bpfleet's pinned
// link for another while the agent runs; the next apply (a resync) puts
// bpfleet's program back with Link.Update and reports Tampered.
func TestTamperedWhileRunning(t *testing.T) {
	e := newEnv(t)
	uid := "tamperrun-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	d := e.open(t)
	before := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, before)

	pin := bpffs.Layout{Root: e.root}.Link(types.UID(uid), kernelprog.XDPFilter, before.AttachPoint)
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatalf("open bpfleet's pinned link: %v", err)
	}
	defer l.Close()
	intruder := loadIntruder(t)
	if err := l.Update(intruder); err != nil {
		t.Fatalf("swap the program out of band: %v", err)
	}
	info, err := intruder.Info()
	if err != nil {
		t.Fatal(err)
	}
	intruderID, _ := info.ID()
	if li, err := l.Info(); err != nil || li.Program != intruderID {
		t.Fatalf("the link runs %v, want the intruder %d", li, intruderID)
	}

	after := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, after)
	if after.Reason != v1alpha1.ReasonTampered || after.ID != before.ID || after.LinkID != before.LinkID ||
		!strings.Contains(after.Message, fmt.Sprint(intruderID)) {
		t.Fatalf("want Tampered naming program %d, program %d restored on link %d; got %s id %d link %d: %s",
			intruderID, before.ID, before.LinkID, after.Reason, after.ID, after.LinkID, after.Message)
	}
	if li, err := l.Info(); err != nil || uint32(li.Program) != before.ID {
		t.Fatalf("the link runs %v after the resync, want bpfleet's program %d", li, before.ID)
	}
	e.sendUDP(t, 9999, 5)
	if got := e.counter(t, uid, 1); got < 5 {
		t.Fatalf("%d drops after 5 packets of death: the filter does not run", got)
	}
}

// TestInterfaceRecreate deletes and recreates the interface, like a pod
// veth: the program is attached to the new one within a second.
func TestInterfaceRecreate(t *testing.T) {
	e := newEnv(t)
	uid := "iface-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	ds.Spec.Programs[0].XDP.Interfaces.Names = []string{"bvr*"}
	d := e.open(t)
	if st := one(t, d.Apply(ctx, parsed(ds)), uid); st.State != dataplane.StatePending || st.Reason != v1alpha1.ReasonNoInterface {
		t.Fatalf("no interface yet: got %s/%s", st.State, st.Reason)
	}
	name, peer := netns.UniqueName("bvr"), netns.UniqueName("bvq")
	var worst time.Duration
	for round := 0; round < 3; round++ {
		drain(d.Changes())
		start := time.Now()
		e.nsA.Exec(t, "ip", "link", "add", name, "type", "veth", "peer", "name", peer)
		st := waitAttached(t, d, uid, 2*time.Second)
		lat := time.Since(start)
		if lat > worst {
			worst = lat
		}
		t.Logf("round %d: %s attached %s after the interface appeared", round, st.AttachPoint, lat)
		e.nsA.Exec(t, "ip", "link", "del", name)
		// The link dies with the interface: resync drops it.
		eventually(t, 2*time.Second, "pending again", func() bool {
			select {
			case <-d.Changes():
			case <-time.After(20 * time.Millisecond):
			}
			return one(t, d.Resync(ctx), uid).State == dataplane.StatePending
		})
	}
	t.Logf("interface re-attach latency, worst of 3: %s", worst)
	if worst > time.Second {
		t.Fatalf("re-attach took %s, want under 1s", worst)
	}
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// waitAttached resyncs on every Changes signal, as the agent controller does.
func waitAttached(t *testing.T, d *dataplane.Dataplane, uid string, limit time.Duration) dataplane.ProgramState {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case <-d.Changes():
			if st := one(t, d.Resync(ctx), uid); st.State == dataplane.StateAttached {
				return st
			}
		case <-deadline:
			t.Fatalf("not attached within %s", limit)
		}
	}
}

// TestDrift detaches the link and removes pins behind the agent's back.
func TestDrift(t *testing.T) {
	e := newEnv(t)
	uid := "drift-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	d := e.open(t)
	st := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, st)
	layout := bpffs.Layout{Root: e.root}

	// bpftool link detach id N, done through the same syscall.
	l, err := link.NewFromID(link.ID(st.LinkID))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Detach(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	healed := one(t, d.Resync(ctx), uid)
	wantAttached(t, healed)
	if healed.LinkID == st.LinkID || healed.ID != st.ID {
		t.Fatalf("want a new link for the same program: link %d -> %d, program %d -> %d", st.LinkID, healed.LinkID, st.ID, healed.ID)
	}

	// rm of the link, program and map pins: pinned again, nothing reloaded.
	for _, pin := range []string{
		layout.Link(types.UID(uid), kernelprog.XDPFilter, healed.AttachPoint),
		layout.Program(types.UID(uid), kernelprog.XDPFilter),
		layout.Map(types.UID(uid), "deny"),
	} {
		if err := os.Remove(pin); err != nil {
			t.Fatal(err)
		}
		again := one(t, d.Resync(ctx), uid)
		wantAttached(t, again)
		if again.LinkID != healed.LinkID || again.ID != healed.ID {
			t.Fatalf("rm %s: link %d -> %d, program %d -> %d", filepath.Base(pin), healed.LinkID, again.LinkID, healed.ID, again.ID)
		}
		if _, err := os.Stat(pin); err != nil {
			t.Fatalf("pin %s not restored: %v", pin, err)
		}
	}
}

// TestMapEntries changes spec.mapEntries: the map changes, the program does not.
func TestMapEntries(t *testing.T) {
	e := newEnv(t)
	uid := "entries-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	d := e.open(t)
	before := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, before)

	// A generation that changes nothing the entry runs (a new image whose
	// wave has not come: same digest) leaves its status as it was.
	ds.Generation = 2
	ds.Spec.Bundle.Image = "registry.example/filter:v2"
	ds.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"edge": "true"}}
	if same := one(t, d.Apply(ctx, parsed(ds)), uid); same.Generation != before.Generation || same.ID != before.ID || same.State != before.State {
		t.Fatalf("an edit that changes nothing here changed the entry: %+v -> %+v", before, same)
	}

	ds.Generation = 3
	ds.Spec.MapEntries = []v1alpha1.MapEntry{{Map: "deny", Key: "QR8=", Value: "AQ==", Encoding: v1alpha1.MapEncodingBase64}} // port 8001
	after := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, after)
	if after.ID != before.ID {
		t.Fatalf("map entry change reloaded the program: %d -> %d", before.ID, after.ID)
	}
	if after.Generation != 3 {
		t.Errorf("generation %d after a map entry change of generation 3", after.Generation)
	}
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: e.root}.Map(types.UID(uid), "deny"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var v uint8
	if err := m.Lookup(uint16(8001), &v); err != nil || v != 1 {
		t.Fatalf("new rule 8001 not in map: %v %d", err, v)
	}
	if err := m.Lookup(uint16(9999), &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("removed rule 9999 still in map: %v", err)
	}
	// The new rule drops at once.
	e.sendUDP(t, 8001, 5)
	if got := e.counter(t, uid, 1); got < 5 {
		t.Fatalf("%d drops after 5 packets to the new port", got)
	}

	// A bad entry is reported, what runs keeps running.
	ds.Spec.MapEntries = []v1alpha1.MapEntry{{Map: "deny", Key: "01", Value: "01"}}
	bad := one(t, d.Apply(ctx, parsed(ds)), uid)
	if bad.State != dataplane.StateFailed || bad.Reason != v1alpha1.ReasonMapUpdateFailed || bad.ID != before.ID {
		t.Fatalf("bad entry: got %s/%s id %d: %s", bad.State, bad.Reason, bad.ID, bad.Message)
	}
}

// TestFailuresKeepWhatRuns: a program the verifier refuses is reported with
// the log's tail, other programs stay attached; a bad new digest or a Hold
// leaves the old program running.
func TestFailuresKeepWhatRuns(t *testing.T) {
	e := newEnv(t)
	good := "good-" + randHex(4)
	bad := "bad-" + randHex(4)
	gds := e.xdpDesired(t, good, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	bds := apiDesired{Name: "bad", UID: types.UID(bad), Digest: "sha256:b", Bundle: bundle(t, "sha256:b", kernelprog.Object),
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{Name: kernelprog.XDPRejected,
			XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}, Mode: v1alpha1.XDPModeGeneric}}}}}
	d := e.open(t)
	states := d.Apply(ctx, parsed(gds, bds))
	g := one(t, states, good)
	wantAttached(t, g)
	b := one(t, states, bad)
	if b.State != dataplane.StateFailed || b.Reason != v1alpha1.ReasonVerifierRejected || !strings.Contains(b.Message, "invalid access to packet") {
		t.Fatalf("want VerifierRejected with the log tail, got %s/%s: %q", b.State, b.Reason, b.Message)
	}
	t.Logf("verifier message:\n%s", b.Message)

	// A new digest the verifier refuses: v1 keeps running.
	broken := e.xdpDesired(t, good, "sha256:broken", kernelprog.ObjectBroken, v1alpha1.XDPModeNative)
	st := one(t, d.Apply(ctx, parsed(broken)), good)
	if st.State != dataplane.StateFailed || st.Reason != v1alpha1.ReasonVerifierRejected || st.ID != g.ID || st.LinkID != g.LinkID || st.Digest != "sha256:broken" {
		t.Fatalf("bad digest: want Failed/VerifierRejected with program %d still linked by %d, got %s/%s id %d link %d digest %s",
			g.ID, g.LinkID, st.State, st.Reason, st.ID, st.LinkID, st.Digest)
	}
	if !strings.Contains(st.Message, "keeping sha256:v1 running") {
		t.Fatalf("message does not say what keeps running: %q", st.Message)
	}
	e.sendUDP(t, 9999, 3)
	if e.counter(t, good, 1) < 3 {
		t.Fatal("old program no longer filters")
	}

	// Hold (registry down): the new digest is not loaded, v1 keeps running.
	held := e.xdpDesired(t, good, "sha256:v2", kernelprog.ObjectV2, v1alpha1.XDPModeNative)
	held.Hold = dataplane.Hold(v1alpha1.ReasonPullFailed, errors.New("registry unavailable"))
	st = one(t, d.Apply(ctx, parsed(held)), good)
	if st.State != dataplane.StateAttached || st.Reason != v1alpha1.ReasonPullFailed || st.ID != g.ID || st.Digest != "sha256:v1" {
		t.Fatalf("hold: want Attached/PullFailed on program %d digest v1, got %s/%s id %d digest %s", g.ID, st.State, st.Reason, st.ID, st.Digest)
	}
	// Nil bundle: same.
	held.Hold, held.Bundle = nil, nil
	st = one(t, d.Apply(ctx, parsed(held)), good)
	if st.State != dataplane.StateAttached || st.ID != g.ID {
		t.Fatalf("nil bundle: want the old program attached, got %s/%s id %d", st.State, st.Reason, st.ID)
	}
	// Held on the digest that runs: a new rule needs no bundle and applies at once.
	same := e.xdpDesired(t, good, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	same.Bundle, same.Hold = nil, dataplane.Hold(v1alpha1.ReasonPullFailed, errors.New("registry unavailable"))
	same.Spec.MapEntries = append(same.Spec.MapEntries, v1alpha1.MapEntry{Map: "deny", Key: portKey(7777), Value: "01"})
	st = one(t, d.Apply(ctx, parsed(same)), good)
	if st.State != dataplane.StateAttached || st.ID != g.ID {
		t.Fatalf("held, same digest: got %s/%s id %d", st.State, st.Reason, st.ID)
	}
	drops := e.counter(t, good, 1)
	e.sendUDP(t, 7777, 3)
	if got := e.counter(t, good, 1); got < drops+3 {
		t.Fatalf("rule added while held did not apply: drops %d -> %d", drops, got)
	}
}

// TestDelete removes a BpfProgram: no pin, link or record is left.
func TestDelete(t *testing.T) {
	e := newEnv(t)
	uid := "delete-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	ds.Spec.Programs = append(ds.Spec.Programs, v1alpha1.ProgramAttachment{Name: kernelprog.Tracepoint,
		Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: "sys_enter_getppid"}})
	d := e.open(t)
	states := d.Apply(ctx, parsed(ds))
	if len(states) != 2 {
		t.Fatalf("want 2 states, got %+v", states)
	}
	var links []uint32
	var progs []uint32
	for _, s := range states {
		wantAttached(t, s)
		links, progs = append(links, s.LinkID), append(progs, s.ID)
	}
	if got := d.Apply(ctx, nil); len(got) != 0 {
		t.Fatalf("states after delete: %+v", got)
	}
	if ents, err := os.ReadDir(e.root); err != nil || len(ents) != 0 {
		t.Fatalf("pin root not empty: %v %v", ents, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "programs")); len(ents) != 0 {
		t.Fatalf("records left: %v", ents)
	}
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Take().Info()
		if err != nil {
			continue
		}
		for _, id := range links {
			if uint32(info.ID) == id {
				t.Fatalf("link %d still exists", id)
			}
		}
	}
	for _, id := range progs {
		if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
			p.Close()
			t.Fatalf("program %d still loaded", id)
		}
	}
}

// TestPinRemovedWhileDown removes a map pin while the agent is down: the
// restarted agent cannot trust a partial set, reloads behind the same link
// and writes the map entries again.
func TestPinRemovedWhileDown(t *testing.T) {
	e := newEnv(t)
	uid := "pinrm-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	d := e.open(t)
	before := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, before)
	_ = d.Close()
	pin := bpffs.Layout{Root: e.root}.Map(types.UID(uid), "deny")
	if err := os.Remove(pin); err != nil {
		t.Fatal(err)
	}
	d = e.open(t)
	after := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, after)
	if after.LinkID != before.LinkID || after.ID == before.ID {
		t.Fatalf("want a reload behind link %d, got link %d program %d -> %d", before.LinkID, after.LinkID, before.ID, after.ID)
	}
	m, err := ebpf.LoadPinnedMap(pin, nil)
	if err != nil {
		t.Fatalf("deny not pinned again: %v", err)
	}
	defer m.Close()
	var v uint8
	if err := m.Lookup(uint16(9999), &v); err != nil {
		t.Fatalf("rule not written again: %v", err)
	}
}
