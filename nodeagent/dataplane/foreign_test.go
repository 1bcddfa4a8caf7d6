package dataplane_test

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// TestForeignProgramsUntouched: programs bpfleet did not load keep running
// through our attach, swap and delete; a hook someone else holds makes our
// entry fail, it never evicts them.
func TestForeignProgramsUntouched(t *testing.T) {
	e := newEnv(t)
	src := netwatch.NewNetlink(e.opts.NetNS)
	ifaces, err := src.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var idx int
	for _, i := range ifaces {
		if i.Name == e.veth.A {
			idx = i.Index
		}
	}
	cs, err := loader.ParseELF(kernelprog.Object)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := loader.LoadMaps(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, m := range maps {
			m.Close()
		}
	}()
	xdp, err := loader.LoadProgram(cs, kernelprog.XDPPass, maps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer xdp.Close()
	tc, err := loader.LoadProgram(cs, kernelprog.TCCount, maps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	var foreignXDP, foreignTC link.Link
	if err := src.Do(func() error {
		var err error
		if foreignXDP, err = link.AttachXDP(link.XDPOptions{Program: xdp, Interface: idx}); err != nil {
			return err
		}
		foreignTC, err = link.AttachTCX(link.TCXOptions{Program: tc, Interface: idx, Attach: ebpf.AttachTCXIngress})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer foreignXDP.Close()
	defer foreignTC.Close()
	alive := func(l link.Link) bool {
		info, err := l.Info()
		if err != nil {
			return false
		}
		if x := info.XDP(); x != nil {
			return x.Ifindex == uint32(idx)
		}
		if x := info.TCX(); x != nil {
			return x.Ifindex == uint32(idx)
		}
		return false
	}

	d := e.open(t)
	xuid, tuid := "fx-"+randHex(4), "ft-"+randHex(4)
	xds := e.xdpDesired(t, xuid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	tds := apiDesired{Name: "tc", UID: types.UID(tuid), Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", kernelprog.Object),
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{Name: kernelprog.TCCount,
			TC: &v1alpha1.TCAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}, Direction: v1alpha1.TCIngress, Order: v1alpha1.TCOrderFirst}}}}}
	states := d.Apply(ctx, parsed(xds, tds))
	if st := one(t, states, xuid); st.State != dataplane.StateFailed || st.Reason != v1alpha1.ReasonAttachFailed {
		t.Fatalf("XDP hook held by someone else: want Failed/AttachFailed, got %s/%s", st.State, st.Reason)
	}
	wantAttached(t, one(t, states, tuid))
	// Upgrade ours, then delete everything of ours.
	tds.Digest, tds.Bundle = "sha256:v2", bundle(t, "sha256:v2", kernelprog.ObjectV2)
	wantAttached(t, one(t, d.Apply(ctx, parsed(tds)), tuid))
	d.Apply(ctx, nil)
	if !alive(foreignXDP) || !alive(foreignTC) {
		t.Fatalf("foreign links disturbed: xdp %v tcx %v", alive(foreignXDP), alive(foreignTC))
	}
}
