package dataplane_test

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/netfilter"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
)

// TestNetfilterBlock runs nf-count from a BpfProgram spec on the ipv4
// output hook of the env's namespace A: datagrams on loopback there are
// counted; the record stores the link's kind; a restarted agent re-adopts
// the link; an upgrade (netfilter links cannot swap programs) attaches the
// new program on a new link, which counts; deleting detaches it.
func TestNetfilterBlock(t *testing.T) {
	e := newEnv(t)
	const port = 7300
	uid := "netfilter-" + randHex(4)
	netnsPath := filepath.Join("/var/run/netns", e.nsA.Name)
	ds := apiDesired{Name: "count", UID: types.UID(uid), Generation: 1, Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", netfilter.Object),
		Spec: v1alpha1.BpfProgramSpec{
			Programs: []v1alpha1.ProgramAttachment{{Name: netfilter.Program, Netfilter: &v1alpha1.NetfilterAttach{Family: "ipv4", Hook: "output", NetNS: netnsPath}}},
		}}
	d := e.open(t)
	first := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, first)
	if want := "netfilter/ipv4/output/0:" + netnsPath; first.AttachPoint != want {
		t.Fatalf("attach point %q, want %q", first.AttachPoint, want)
	}

	var sock *net.UDPConn
	if err := e.nsA.Do(t, func() error {
		var err error
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	// counted sends a datagram on loopback in namespace A and returns
	// how many packets the running program had counted before and after.
	counted := func(payload string) (before, after uint64) {
		t.Helper()
		counts, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: e.root}.Map(types.UID(uid), netfilter.CountsMap), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer counts.Close()
		if err := counts.Lookup(uint32(netfilter.Packets), &before); err != nil {
			t.Fatal(err)
		}
		if err := e.nsA.Do(t, func() error {
			c, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
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
		if n, err := sock.Read(buf); err != nil || string(buf[:n]) != payload {
			t.Fatalf("the datagram did not arrive: %q %v", buf[:n], err)
		}
		if err := counts.Lookup(uint32(netfilter.Packets), &after); err != nil {
			t.Fatal(err)
		}
		return before, after
	}
	if before, after := counted("v1"); after <= before {
		t.Fatalf("v1 counted %d -> %d packets", before, after)
	}

	rec, ok, err := bpffs.Store{Dir: e.state}.Get(types.UID(uid))
	if err != nil || !ok || len(rec.Links) != 1 || rec.Links[0].Kind != string(attach.KindNetfilter) {
		t.Fatalf("record %+v (%v, %v): want one link of kind %s", rec, ok, err, attach.KindNetfilter)
	}

	_ = d.Close()
	d = e.open(t)
	again := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, again)
	if again.LinkID != first.LinkID || again.ID != first.ID {
		t.Fatalf("re-adoption re-attached: link %d -> %d, program %d -> %d", first.LinkID, again.LinkID, first.ID, again.ID)
	}
	ds.Digest, ds.Bundle = "sha256:v2", bundle(t, "sha256:v2", netfilter.Object)
	up := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, up)
	if up.ID == first.ID || up.LinkID == first.LinkID {
		t.Fatalf("upgrade: program %d -> %d, link %d -> %d; want a new program on a new link", first.ID, up.ID, first.LinkID, up.LinkID)
	}
	if before, after := counted("v2"); after <= before {
		t.Fatalf("v2 counted %d -> %d packets", before, after)
	}
	if got := d.Apply(ctx, nil); len(got) != 0 {
		t.Fatalf("states left after delete: %+v", got)
	}
	for _, id := range []uint32{first.LinkID, up.LinkID} {
		if l, err := link.NewFromID(link.ID(id)); err == nil {
			l.Close()
			t.Errorf("deleted: link %d still exists", id)
		}
	}
}
