package attach_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bpf/sklookup"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestSkLookupSteers attaches sk-lookup-steer to a network namespace the
// test creates: a datagram to a port nobody listens on is lost before, and
// reaches the steered-to socket after; the program counted the lookups.
// Detached, the port is deaf again. (UDP: this kernel refuses TCP sockets
// in a sockmap with EOPNOTSUPP.)
func TestSkLookupSteers(t *testing.T) {
	privileged.RequireBPFFS(t)
	const listenPort, steerPort = 7000, 7001
	ns := netns.New(t)

	cs, err := sklookup.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Variables[sklookup.SteerPortConstant].Set(uint16(steerPort)); err != nil {
		t.Fatal(err)
	}
	hook := &attach.SkLookup{Named: attach.Named{Name: sklookup.Program}, NetNS: filepath.Join("/var/run/netns", ns.Name)}
	if err := hook.Prepare(cs.Programs[sklookup.Program]); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(cs)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()

	var sock *net.UDPConn
	if err := ns.Do(t, func() error {
		var err error
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: listenPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	raw, err := sock.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var putErr error
	if err := raw.Control(func(fd uintptr) {
		putErr = coll.Maps[sklookup.SteerMap].Put(uint32(0), uint64(fd))
	}); err != nil || putErr != nil {
		t.Fatalf("put socket in %s: %v %v", sklookup.SteerMap, err, putErr)
	}

	// delivered sends payload to the steered port inside the namespace and
	// tells whether the socket on listenPort received it.
	delivered := func(payload string) bool {
		t.Helper()
		if err := ns.Do(t, func() error {
			c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", steerPort))
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
		if err != nil {
			return false
		}
		if string(buf[:n]) != payload {
			t.Fatalf("received %q, want %q", buf[:n], payload)
		}
		return true
	}
	if delivered("before") {
		t.Fatal("before attach: a datagram to the steered port reached the socket")
	}

	ts, err := hook.Targets(attach.Env{})
	if err != nil || len(ts) != 1 {
		t.Fatalf("targets: %v %v", ts, err)
	}
	if want := "sk_lookup//var/run/netns/" + ns.Name; ts[0].Point != want {
		t.Errorf("point %q, want %q", ts[0].Point, want)
	}
	if k := attach.KindOfPoint(ts[0].Point); k != attach.KindSkLookup {
		t.Errorf("KindOfPoint(%s) = %q", ts[0].Point, k)
	}
	prog := coll.Programs[sklookup.Program]
	l, err := ts[0].Attach(prog)
	if err != nil {
		t.Fatal(err)
	}
	if !ts[0].Alive(l) {
		t.Error("fresh link not alive")
	}
	if err := l.Update(prog); err != nil {
		t.Errorf("sk_lookup links are updatable in place: %v", err)
	}
	if !delivered("steered") {
		t.Fatalf("attached: a datagram to port %d did not reach the socket on %d", steerPort, listenPort)
	}
	var lookups, steered uint64
	counts := coll.Maps[sklookup.CountsMap]
	if err := counts.Lookup(uint32(sklookup.Lookups), &lookups); err != nil {
		t.Fatal(err)
	}
	if err := counts.Lookup(uint32(sklookup.Steered), &steered); err != nil {
		t.Fatal(err)
	}
	if lookups < 1 || steered != 1 {
		t.Errorf("counted %d lookups, %d steered; want >= 1 and 1", lookups, steered)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if delivered("after") {
		t.Fatal("detached: a datagram to the steered port still reached the socket")
	}
}

// TestSkLookupRefusesOtherPrograms: the table of kinds admits sk_lookup
// programs only.
func TestSkLookupRefusesOtherPrograms(t *testing.T) {
	hook := &attach.SkLookup{Named: attach.Named{Name: "p"}}
	for _, ps := range []*ebpf.ProgramSpec{{Type: ebpf.XDP}, {Type: ebpf.SchedCLS}, {Type: ebpf.SkLookup, AttachType: ebpf.AttachSkLookup}} {
		err := hook.Prepare(ps)
		if fits := ps.Type == ebpf.SkLookup; fits != (err == nil) || (!fits && !errors.Is(err, attach.ErrTypeMismatch)) {
			t.Errorf("Prepare(%s) = %v", ps.Type, err)
		}
	}
}
