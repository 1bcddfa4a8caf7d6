package dataplane_test

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/sklookup"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestSkLookupBlock runs sk-lookup-steer from a BpfProgram spec on the env's
// namespace A: datagrams to the steered port reach the socket in the map;
// the record stores the link's kind; a restarted agent re-adopts the link,
// and an upgrade swaps the program in place.
func TestSkLookupBlock(t *testing.T) {
	e := newEnv(t)
	const listenPort, steerPort = 7100, 7101
	uid := "sklookup-" + randHex(4)
	netnsPath := filepath.Join("/var/run/netns", e.nsA.Name)
	ds := apiDesired{Name: "steer", UID: types.UID(uid), Generation: 1, Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", sklookup.Object),
		Spec: v1alpha1.BpfProgramSpec{
			Programs:  []v1alpha1.ProgramAttachment{{Name: sklookup.Program, SkLookup: &v1alpha1.SkLookupAttach{NetNS: netnsPath}}},
			Constants: []v1alpha1.Constant{{Name: sklookup.SteerPortConstant, Value: strconv.Itoa(steerPort)}},
		}}
	d := e.open(t)
	first := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, first)
	if want := "sk_lookup/" + netnsPath; first.AttachPoint != want {
		t.Fatalf("attach point %q, want %q", first.AttachPoint, want)
	}

	var sock *net.UDPConn
	if err := e.nsA.Do(t, func() error {
		var err error
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: listenPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	// putSocket puts the socket in the running steer map (an upgrade
	// loads new maps: the socket goes in again, as its owner would do).
	putSocket := func() {
		t.Helper()
		steer, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: e.root}.Map(types.UID(uid), sklookup.SteerMap), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer steer.Close()
		raw, err := sock.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var putErr error
		if err := raw.Control(func(fd uintptr) { putErr = steer.Put(uint32(0), uint64(fd)) }); err != nil || putErr != nil {
			t.Fatalf("put socket: %v %v", err, putErr)
		}
	}
	putSocket()
	delivered := func(payload string) bool {
		t.Helper()
		if err := e.nsA.Do(t, func() error {
			c, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(steerPort)))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(payload))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		_ = sock.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := sock.Read(buf)
		return err == nil && string(buf[:n]) == payload
	}
	if !delivered("steered") {
		t.Fatal("a datagram to the steered port did not reach the socket")
	}

	rec, ok, err := bpffs.Store{Dir: e.state}.Get(types.UID(uid))
	if err != nil || !ok || len(rec.Links) != 1 || rec.Links[0].Kind != string(attach.KindSkLookup) {
		t.Fatalf("record %+v (%v, %v): want one link of kind %s", rec, ok, err, attach.KindSkLookup)
	}

	_ = d.Close()
	d = e.open(t)
	again := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, again)
	if again.LinkID != first.LinkID || again.ID != first.ID {
		t.Fatalf("re-adoption re-attached: link %d -> %d, program %d -> %d", first.LinkID, again.LinkID, first.ID, again.ID)
	}
	ds.Digest, ds.Bundle = "sha256:v2", bundle(t, "sha256:v2", sklookup.Object)
	up := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, up)
	if up.ID == first.ID || up.LinkID != first.LinkID {
		t.Fatalf("upgrade: program %d -> %d, link %d -> %d; want a new program on the same link", first.ID, up.ID, first.LinkID, up.LinkID)
	}
	putSocket()
	if !delivered("upgraded") {
		t.Fatal("after the upgrade a datagram to the steered port did not reach the socket")
	}
	if got := d.Apply(ctx, nil); len(got) != 0 {
		t.Fatalf("states left after delete: %+v", got)
	}
	if delivered("deleted") {
		t.Fatal("deleted: the port is still steered")
	}
}

// TestReadoptRecordWithoutKind: records an agent wrote before records
// stored each link's kind are still re-adopted (kind from the attach
// point), and an upgrade right after the restart swaps updatable links in
// place and re-attaches the others.
func TestReadoptRecordWithoutKind(t *testing.T) {
	e := newEnv(t)
	privileged.RequireTracefs(t)
	for _, tc := range []struct {
		name string
		a    v1alpha1.ProgramAttachment
		// inPlace tells whether the link id must survive the upgrade.
		inPlace bool
	}{
		{name: "xdp", a: v1alpha1.ProgramAttachment{Name: kernelprog.XDPPass, XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}}}, inPlace: true},
		{name: "tracepoint", a: v1alpha1.ProgramAttachment{Name: kernelprog.Tracepoint, Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: "sys_enter_getppid"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "oldrec-" + tc.name + "-" + randHex(3)
			ds := apiDesired{Name: tc.name, UID: types.UID(uid), Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", kernelprog.Object),
				Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{tc.a}}}
			d := e.open(t)
			v1 := one(t, d.Apply(ctx, parsed(ds)), uid)
			wantAttached(t, v1)
			_ = d.Close()

			// The record as an older agent wrote it: links without a kind.
			store := bpffs.Store{Dir: e.state}
			rec, ok, err := store.Get(types.UID(uid))
			if err != nil || !ok || len(rec.Links) != 1 {
				t.Fatalf("record %+v: %v %v", rec, ok, err)
			}
			rec.Links[0].Kind = ""
			if err := store.Put(rec); err != nil {
				t.Fatal(err)
			}

			d = e.open(t)
			adopted := one(t, d.Snapshot(), uid)
			if adopted.State != dataplane.StateAttached || adopted.LinkID != v1.LinkID {
				t.Fatalf("not re-adopted: %s link %d, want Attached link %d", adopted.State, adopted.LinkID, v1.LinkID)
			}
			ds.Digest, ds.Bundle = "sha256:v2", bundle(t, "sha256:v2", kernelprog.Object)
			v2 := one(t, d.Apply(ctx, parsed(ds)), uid)
			wantAttached(t, v2)
			if v2.ID == v1.ID || tc.inPlace != (v2.LinkID == v1.LinkID) {
				t.Fatalf("upgrade: program %d -> %d, link %d -> %d, want in place %v", v1.ID, v2.ID, v1.LinkID, v2.LinkID, tc.inPlace)
			}
			d.Apply(ctx, nil)
		})
	}
}
