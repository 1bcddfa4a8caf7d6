package netwatch_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/goleak"

	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
	tnetns "github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNetlink lists, finds the primary interface, runs code inside the
// namespace and signals additions and removals, all in a test namespace.
func TestNetlink(t *testing.T) {
	privileged.RequireRoot(t)
	ns := tnetns.New(t)
	peer := tnetns.New(t)
	veth := tnetns.NewVeth(t, ns, "10.78.0.1/24", peer, "10.78.0.2/24")
	ns.Exec(t, "ip", "route", "add", "default", "via", "10.78.0.2")
	src := netwatch.NewNetlink(filepath.Join("/var/run/netns", ns.Name))

	ifaces, err := src.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, i := range ifaces {
		names[i.Name] = true
	}
	if len(ifaces) != 2 || !names["lo"] || !names[veth.A] {
		t.Fatalf("interfaces = %+v, want lo and %s", ifaces, veth.A)
	}
	if p, err := src.Primary(); err != nil || p != veth.A {
		t.Fatalf("Primary = %q, %v; want %s", p, err, veth.A)
	}

	// Do runs inside the namespace, and the caller's thread stays out of it.
	want, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if err := src.Do(func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(want) {
			t.Error("Do ran outside the namespace")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	self, _ := netns.Get()
	defer self.Close()
	if self.Equal(want) {
		t.Fatal("the caller's thread was left in the namespace")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 16)
	if err := src.Watch(ctx, func() { changed <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, yes bool) {
		t.Helper()
		select {
		case <-changed:
			if !yes {
				t.Fatalf("%s signalled a change", what)
			}
		case <-time.After(300 * time.Millisecond):
			if yes {
				t.Fatalf("%s not signalled", what)
			}
		}
	}
	name := tnetns.UniqueName("bwn")
	ns.Exec(t, "ip", "link", "add", name, "type", "veth", "peer", "name", tnetns.UniqueName("bwp"))
	expect("interface added", true)
	ns.Exec(t, "ip", "link", "set", name, "up")
	drain(changed)
	ns.Exec(t, "ip", "link", "set", name, "mtu", "1400")
	expect("an MTU change", false)
	ns.Exec(t, "ip", "link", "del", name)
	expect("interface removed", true)
	cancel()
}

func drain(c chan struct{}) {
	time.Sleep(100 * time.Millisecond)
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
