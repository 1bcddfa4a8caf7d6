package attach_test

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bpf/netfilter"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestNetfilterCounts attaches nf-count to the ipv4 output hook of a
// network namespace the test creates: a datagram on loopback passes the
// hook and is counted; with the drop constant set it is counted and never
// arrives. Detached, datagrams arrive and nothing is counted.
func TestNetfilterCounts(t *testing.T) {
	privileged.RequireBPFFS(t)
	for _, drop := range []bool{false, true} {
		t.Run("drop="+strconv.FormatBool(drop), func(t *testing.T) {
			const port = 7200
			ns := netns.New(t)
			cs, err := netfilter.Spec()
			if err != nil {
				t.Fatal(err)
			}
			if drop {
				if err := cs.Variables[netfilter.DropConstant].Set(uint8(1)); err != nil {
					t.Fatal(err)
				}
			}
			hook, err := attach.Parse(attach.KindNetfilter, netfilter.Program,
				[]byte(`{"family":"ipv4","hook":"output","priority":-10,"netns":"`+filepath.Join("/var/run/netns", ns.Name)+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			if err := hook.Prepare(cs.Programs[netfilter.Program]); err != nil {
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
				sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			// delivered sends payload to the socket from inside the
			// namespace and tells whether it arrived (a packet dropped at
			// the output hook fails the write with EPERM).
			delivered := func(payload string) bool {
				t.Helper()
				if err := ns.Do(t, func() error {
					c, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
					if err != nil {
						return err
					}
					defer c.Close()
					_, err = c.Write([]byte(payload))
					return err
				}); err != nil && !errors.Is(err, syscall.EPERM) {
					t.Fatal(err)
				}
				buf := make([]byte, 64)
				_ = sock.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				n, err := sock.Read(buf)
				return err == nil && string(buf[:n]) == payload
			}
			counts := coll.Maps[netfilter.CountsMap]
			counter := func(c netfilter.Counter) uint64 {
				t.Helper()
				var v uint64
				if err := counts.Lookup(uint32(c), &v); err != nil {
					t.Fatal(err)
				}
				return v
			}

			ts, err := hook.Targets(attach.Env{})
			if err != nil || len(ts) != 1 {
				t.Fatalf("targets: %v %v", ts, err)
			}
			if want := "netfilter/ipv4/output/-10:/var/run/netns/" + ns.Name; ts[0].Point != want {
				t.Errorf("point %q, want %q", ts[0].Point, want)
			}
			if k := attach.KindOfPoint(ts[0].Point); k != attach.KindNetfilter {
				t.Errorf("KindOfPoint(%s) = %q", ts[0].Point, k)
			}
			l, err := ts[0].Attach(coll.Programs[netfilter.Program])
			if err != nil {
				t.Fatal(err)
			}
			if !ts[0].Alive(l) {
				t.Error("fresh link not alive")
			}
			if got := delivered("attached"); got == drop {
				t.Errorf("attached with drop=%v: delivered %v", drop, got)
			}
			packets, dropped := counter(netfilter.Packets), counter(netfilter.Dropped)
			if packets < 1 || (drop && dropped != packets) || (!drop && dropped != 0) {
				t.Errorf("counted %d packets, %d dropped (drop=%v)", packets, dropped, drop)
			}

			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if !delivered("detached") {
				t.Error("detached: the datagram did not arrive")
			}
			if after := counter(netfilter.Packets); after != packets {
				t.Errorf("detached: counted %d packets, had %d", after, packets)
			}
		})
	}
}

// TestNetfilterBlock: the block's family and hook are checked when it
// parses, and the table of kinds admits netfilter programs only.
func TestNetfilterBlock(t *testing.T) {
	for _, tt := range []struct {
		block string
		ok    bool
	}{
		{`{"family":"ipv6","hook":"prerouting"}`, true},
		{`{"family":"ipv4","hook":"postrouting","priority":100}`, true},
		{`{"family":"arp","hook":"output"}`, false},
		{`{"family":"ipv4","hook":"ingress"}`, false},
	} {
		_, err := attach.Parse(attach.KindNetfilter, "p", []byte(tt.block))
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, attach.ErrNoAttachBlock)) {
			t.Errorf("Parse(%s) = %v, want ok=%v", tt.block, err, tt.ok)
		}
	}
	hook := &attach.Netfilter{Named: attach.Named{Name: "p"}, Family: "ipv4", Hook: "input"}
	for _, ps := range []*ebpf.ProgramSpec{{Type: ebpf.XDP}, {Type: ebpf.Netfilter}, {Type: ebpf.Netfilter, AttachType: ebpf.AttachNetfilter}} {
		err := hook.Prepare(ps)
		if fits := ps.AttachType == ebpf.AttachNetfilter; fits != (err == nil) || (!fits && !errors.Is(err, attach.ErrTypeMismatch)) {
			t.Errorf("Prepare(%s/%s) = %v", ps.Type, ps.AttachType, err)
		}
	}
}
