package dataplane_test

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

func ruleSetEntries(t *testing.T, rules ...xdpfilter.Rule) []v1alpha1.MapEntry {
	t.Helper()
	entries, err := xdpfilter.RuleSet(rules).Entries()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]v1alpha1.MapEntry, 0, len(entries))
	for _, en := range entries {
		k, v := en.Hex()
		out = append(out, v1alpha1.MapEntry{Map: en.Map, Key: k, Value: v})
	}
	return out
}

// udpRules are n drop rules for UDP ports from, from+1, ...
func udpRules(from uint16, n int) []xdpfilter.Rule {
	rules := make([]xdpfilter.Rule, n)
	for i := range rules {
		rules[i] = xdpfilter.Rule{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: from + uint16(i)}
	}
	return rules
}

// TestShippedFilterRuleSetUpdates runs the shipped packet-of-death filter
// with a rule set and its index in spec.mapEntries (sets large enough to get
// one), then replaces the set with a shorter one on other ports: the program is not reloaded, the new
// set's verdicts hold, the old set's rules and index no longer apply, and
// the seqlock words agree (the index is in use, not bypassed).
func TestShippedFilterRuleSetUpdates(t *testing.T) {
	e := newEnv(t)
	b, err := kernelprog.BuildBundle(ctx, filepath.Join("..", "..", "bpf", "xdpfilter"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	uid := "filter-index-" + randHex(3)
	ds := apiDesired{Name: "filter", UID: types.UID(uid), Generation: 1, Digest: b.Digest, Bundle: b,
		Spec: v1alpha1.BpfProgramSpec{
			Programs: []v1alpha1.ProgramAttachment{{Name: xdpfilter.ProgramName,
				XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}, Mode: v1alpha1.XDPModeGeneric}}},
			MapEntries: ruleSetEntries(t, udpRules(2000, xdpfilter.IndexMinRules+3)...),
		}}
	d := e.open(t)
	first := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, first)

	layout := bpffs.Layout{Root: e.root}
	prog, err := ebpf.LoadPinnedProgram(layout.Program(types.UID(uid), xdpfilter.ProgramName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	verdicts := func(what string, want map[uint16]uint32) {
		t.Helper()
		for port, v := range want {
			in := frame.Build(frame.Spec{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
				Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: port, Payload: []byte("x")})
			got, err := prog.Run(&ebpf.RunOptions{Data: in})
			if err != nil {
				t.Fatal(err)
			}
			if got != v {
				t.Errorf("%s: UDP to %d: verdict %d, want %d", what, port, got, v)
			}
		}
	}
	const drop, pass = 1, 2
	verdicts("first set", map[uint16]uint32{2000: drop, 2019: drop, 3000: pass})

	ds.Generation = 2
	ds.Spec.MapEntries = ruleSetEntries(t, udpRules(3000, xdpfilter.IndexMinRules)...)
	second := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, second)
	if second.ID != first.ID {
		t.Fatalf("a new rule set reloaded the program: %d -> %d", first.ID, second.ID)
	}
	verdicts("second set", map[uint16]uint32{2000: pass, 2019: pass, 3000: drop, 3016: drop})

	seq, err := ebpf.LoadPinnedMap(layout.Map(types.UID(uid), xdpfilter.IndexSeqMap), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	var begin, commit [xdpfilter.IndexEntrySize]byte
	if err := seq.Lookup(uint32(0), &begin); err != nil {
		t.Fatal(err)
	}
	if err := seq.Lookup(uint32(1), &commit); err != nil {
		t.Fatal(err)
	}
	if begin != commit || bytes.Equal(commit[:8], make([]byte, 8)) {
		t.Fatalf("seqlock words %x / %x: want the same non-zero generation", begin, commit)
	}
	rules, err := ebpf.LoadPinnedMap(layout.Map(types.UID(uid), xdpfilter.RulesMap), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rules.Close()
	for slot := uint32(xdpfilter.IndexMinRules); slot < xdpfilter.IndexMinRules+3; slot++ {
		v := make([]byte, xdpfilter.RuleSize)
		if err := rules.Lookup(slot, &v); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v, make([]byte, xdpfilter.RuleSize)) {
			t.Errorf("slot %d of the first set left as it was, want zeroed", slot)
		}
	}
}
