package xdpfilter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/frame"
)

// TestRuleSetEntries: the writer's order (begin, rules, the empty slot,
// index, commit) and the index's keys.
func TestRuleSetEntries(t *testing.T) {
	rules := RuleSet{
		{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999},
		{Action: ActionDrop, Protocol: ProtocolTCP, DstPort: 9999},
		{Action: ActionDrop, DstPort: 53},                 // both protocols
		{Action: ActionDrop, Protocol: ProtocolUDP},       // no port
		{Action: ActionDrop, DstPort: 80, Disabled: true}, // never matches: not indexed
		{Action: ActionPass, Protocol: ProtocolUDP, DstPort: 9999},
	}
	entries, err := rules.entries(0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	index := map[uint32]uint64{}
	var gen uint64
	for _, e := range entries {
		k := binary.NativeEndian.Uint32(e.Key)
		order = append(order, fmt.Sprintf("%s[%d]", e.Map, k))
		switch e.Map {
		case IndexSeqMap:
			g := binary.NativeEndian.Uint64(e.Value)
			if g == 0 || gen != 0 && g != gen {
				t.Fatalf("seq word %d has generation %d (begin %d)", k, g, gen)
			}
			gen = g
			if n := binary.NativeEndian.Uint32(e.Value[8:]); n != uint32(len(rules)) {
				t.Fatalf("seq word %d says %d rules, want %d", k, n, len(rules))
			}
		case IndexMap:
			if g := binary.NativeEndian.Uint64(e.Value[8:]); g != gen {
				t.Fatalf("index entry %d of generation %d, want %d", k, g, gen)
			}
			index[k] = binary.NativeEndian.Uint64(e.Value)
		case RulesMap:
			if k == uint32(len(rules)) && !bytes.Equal(e.Value, make([]byte, RuleSize)) {
				t.Fatal("the slot after the last rule is not empty")
			}
		}
	}
	want := []string{"rule_index_seq[0]", "rules[0]", "rules[1]", "rules[2]", "rules[3]", "rules[4]", "rules[5]", "rules[6]"}
	if fmt.Sprint(order[:len(want)]) != fmt.Sprint(want) || order[len(order)-1] != "rule_index_seq[1]" {
		t.Fatalf("order %v: want begin, the rules, the empty slot, ..., commit", order)
	}
	wantIndex := map[uint32]uint64{
		indexUDP + 9999: 1<<0 | 1<<5,
		indexTCP + 9999: 1 << 1,
		indexTCP + 53:   1 << 2,
		indexUDP + 53:   1 << 2,
		indexAnyPort:    1 << 3,
	}
	if fmt.Sprint(index) != fmt.Sprint(wantIndex) {
		t.Fatalf("index %v, want %v", index, wantIndex)
	}

	other, _ := RuleSet{rules[1], rules[0]}.entries(0)
	if bytes.Equal(other[0].Value, entries[0].Value) {
		t.Fatal("two different rule sets have the same generation")
	}
	again, _ := rules.entries(0)
	if !bytes.Equal(again[0].Value, entries[0].Value) {
		t.Fatal("the same rule set has two generations")
	}
	full := make(RuleSet, MaxRules)
	for i := range full {
		full[i] = Rule{Action: ActionDrop}
	}
	entries, err = full.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Map == RulesMap && binary.NativeEndian.Uint32(e.Key) >= MaxRules {
			t.Fatal("a full set writes a slot past the map")
		}
	}
	// The largest set (every rule for both protocols on its own port) fits
	// the 256 items of a BpfProgram's spec.mapEntries.
	for i := range full {
		full[i] = Rule{Action: ActionDrop, DstPort: uint16(1000 + i)}
	}
	if entries, _ := full.Entries(); len(entries) > 256 {
		t.Fatalf("%d rules need %d map entries, more than spec.mapEntries takes (256)", MaxRules, len(entries))
	}
	if _, err := append(full, Rule{Action: ActionDrop}).Entries(); !errors.Is(err, ErrInvalidRule) {
		t.Fatalf("%d rules: %v, want ErrInvalidRule", MaxRules+1, err)
	}
	if _, err := (RuleSet{{Action: 9}}).Entries(); !errors.Is(err, ErrInvalidRule) {
		t.Fatalf("a bad rule: %v, want ErrInvalidRule", err)
	}
}

// TestSmallSetsAreScanned: below IndexMinRules, Entries writes no index
// and seqlock words of generation 0 (begin first, commit last); from it
// on, an index.
func TestSmallSetsAreScanned(t *testing.T) {
	for _, n := range []int{1, IndexMinRules - 1, IndexMinRules, MaxRules} {
		rules := make(RuleSet, n)
		for i := range rules {
			rules[i] = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: uint16(1000 + i)}
		}
		entries, err := rules.Entries()
		if err != nil {
			t.Fatal(err)
		}
		first, last := entries[0], entries[len(entries)-1]
		if first.Map != IndexSeqMap || last.Map != IndexSeqMap || binary.NativeEndian.Uint32(last.Key) != seqCommit {
			t.Fatalf("%d rules: entries do not start and end with the seqlock words", n)
		}
		gen := binary.NativeEndian.Uint64(first.Value)
		index := 0
		for _, e := range entries {
			if e.Map == IndexMap {
				index++
			}
		}
		if indexed := n >= IndexMinRules; indexed != (gen != 0) || indexed != (index > 0) {
			t.Errorf("%d rules: generation %d, %d index entries; want an index %t", n, gen, index, indexed)
		}
	}
}

// TestIndexIsUsed proves that packets go by the index while the seq words
// agree, and by the scan when they do not: an index entry emptied by hand
// hides its rule only in the first case.
func TestIndexIsUsed(t *testing.T) {
	objs := loadObjects(t, xdpPass, []Rule{{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999}})
	in := frame.Build(udp4(9999, "x"))
	verdict := func() uint32 {
		t.Helper()
		got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: in})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := verdict(); got != xdpDrop {
		t.Fatalf("indexed rule: verdict %d, want drop", got)
	}
	var seq [IndexEntrySize]byte
	if err := objs.RuleIndexSeq.Lookup(uint32(seqCommit), &seq); err != nil {
		t.Fatal(err)
	}
	empty := append(make([]byte, 8), seq[:8]...) // no slots, this generation
	if err := objs.RuleIndex.Update(uint32(indexUDP+9999), empty, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if got := verdict(); got != xdpPass {
		t.Fatalf("index entry emptied: verdict %d, want pass (the index decides)", got)
	}
	begun := bytes.Clone(seq[:])
	begun[0] ^= 1 // an update of the rule set has begun
	if err := objs.RuleIndexSeq.Update(uint32(seqBegin), begun, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if got := verdict(); got != xdpDrop {
		t.Fatalf("update under way: verdict %d, want drop (the scan decides)", got)
	}
}

// TestRuleWrittenBesideIndex: a rule written by hand after an indexed set
// (in the slot that ends it) applies: the program sees the end is no
// longer empty and scans.
func TestRuleWrittenBesideIndex(t *testing.T) {
	objs := loadObjects(t, xdpPass, []Rule{{Action: ActionDrop, Protocol: ProtocolTCP, DstPort: 80}})
	writeRule(t, objs.Rules, 1, Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999})
	if got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(9999, "x"))}); err != nil || got != xdpDrop {
		t.Fatalf("rule appended by hand: verdict %d (%v), want drop", got, err)
	}
}

// randomRules draws n rules from a small space of ports, protocols,
// families, prefixes and patterns, so that rules overlap and shadow each
// other.
func randomRules(r *rand.Rand, n int) []Rule {
	ports := []uint16{0, 53, 80, 9999}
	rules := make([]Rule, n)
	for i := range rules {
		ru := Rule{Action: ActionDrop, DstPort: ports[r.IntN(len(ports))]}
		if r.IntN(4) == 0 {
			ru.Action = ActionPass
		}
		ru.Protocol = []Protocol{ProtocolAny, ProtocolTCP, ProtocolUDP}[r.IntN(3)]
		switch r.IntN(5) {
		case 0:
			ru.Source = netip.MustParsePrefix("10.0.0.0/24")
		case 1:
			ru.Source = netip.MustParsePrefix("fd00::/64")
		case 2:
			ru.Family = FamilyIPv6
		}
		if r.IntN(3) == 0 {
			ru.PatternOffset = 4
			ru.Pattern = []byte("DEATH")
		}
		ru.Disabled = r.IntN(8) == 0
		rules[i] = ru
	}
	return rules
}

// probeFrames are frames over the same space: both protocols and
// families, each port, inside and outside the prefixes, with and without
// the pattern, and later fragments (no ports).
func probeFrames() [][]byte {
	var out [][]byte
	srcs := []netip.Addr{v4a, netip.MustParseAddr("192.0.2.1"), v6a, netip.MustParseAddr("2001:db8::1")}
	for _, src := range srcs {
		dst := v4b
		if src.Is6() {
			dst = v6b
		}
		for _, proto := range []uint8{frame.ProtocolUDP, frame.ProtocolTCP} {
			for _, port := range []uint16{53, 80, 9999, 1234} {
				for _, payload := range []string{"xxxxDEATH", "xxxxLIFE!"} {
					s := frame.Spec{Src: src, Dst: dst, Protocol: proto, SrcPort: 40000, DstPort: port, Payload: []byte(payload)}
					out = append(out, frame.Build(s))
				}
			}
			out = append(out, frame.Build(frame.Spec{Src: src, Dst: dst, Protocol: proto, FragmentOffset: 100, Payload: []byte("xxxxxxxxxxxxDEATH")}))
		}
	}
	return out
}

// agree runs every probe frame through both programs and fails on the
// first verdict that differs.
func agree(t *testing.T, indexed, scanned *xdpfilterObjects, frames [][]byte, what string) {
	t.Helper()
	for i, in := range frames {
		got, err := indexed.XdpPodFilter.Run(&ebpf.RunOptions{Data: in})
		if err != nil {
			t.Fatal(err)
		}
		want, err := scanned.XdpPodFilter.Run(&ebpf.RunOptions{Data: in})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: frame %d (%x): verdict %d with the index, %d by the scan", what, i, in, got, want)
		}
	}
}

// TestIndexAgreesWithScan: over random rule sets, the indexed program and
// the same rules scanned give every probe frame the same verdict and count
// it on the same rule.
func TestIndexAgreesWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 4))
	frames := probeFrames()
	indexed := loadEmpty(t, xdpPass)
	for round := range 40 {
		rules := randomRules(r, 1+r.IntN(MaxRules))
		// Fresh maps for the scan: slots of an earlier, longer set would
		// still be read after this set's last rule.
		scanned := loadScanObjects(t, xdpPass, rules)
		writeRuleSet(t, indexed, rules)
		agree(t, indexed, scanned, frames, fmt.Sprintf("round %d, %d rules", round, len(rules)))
		for slot := range rules {
			if a, b := hits(t, indexed.RuleHits, uint32(slot)).Packets, hits(t, scanned.RuleHits, uint32(slot)).Packets; round == 0 && a != b {
				t.Fatalf("rule %d counted %d frames with the index, %d by the scan", slot, a, b)
			}
		}
	}
}

// TestIndexUpdateEveryStep is the consistency guarantee: while one rule set
// replaces another (indexed or, below IndexMinRules, not), entry by entry
// in RuleSet.Entries' order and then with
// the old set's leftover entries removed as the agent removes them, every
// intermediate state gives every probe frame the verdict the scan of the
// same rule slots gives. The scan is today's semantics of rules written in
// place; the index may only make it faster.
func TestIndexUpdateEveryStep(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 44))
	frames := probeFrames()
	indexed, scanned := loadEmpty(t, xdpPass), loadEmpty(t, xdpPass)
	var before []Entry
	for round := range 12 {
		// Sizes on both sides of IndexMinRules: indexed and scanned sets
		// replace each other too.
		rules := randomRules(r, 1+r.IntN(IndexMinRules+8))
		entries, err := RuleSet(rules).Entries()
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range entries {
			writeEntry(t, indexed, e)
			if e.Map == RulesMap {
				writeEntry(t, scanned, e)
			}
			agree(t, indexed, scanned, frames, fmt.Sprintf("round %d, after entry %d of %d (%s)", round, i+1, len(entries), e.Map))
		}
		// The agent then zeroes the array slots the new set leaves out.
		wanted := map[string]bool{}
		for _, e := range entries {
			wanted[e.Map+string(e.Key)] = true
		}
		for _, e := range before {
			if wanted[e.Map+string(e.Key)] {
				continue
			}
			zero := Entry{Map: e.Map, Key: e.Key, Value: make([]byte, len(e.Value))}
			writeEntry(t, indexed, zero)
			if e.Map == RulesMap {
				writeEntry(t, scanned, zero)
			}
			agree(t, indexed, scanned, frames, fmt.Sprintf("round %d, leftover %s removed", round, e.Map))
		}
		before = entries
	}
}

// TestIndexConcurrentUpdate: packets run on both CPUs while two rule sets
// of different lengths and index keys replace each other as fast as the
// maps take them. The drop rule for the probe sits in slot 1 of both, so
// every mix of their slots the scan can meet drops it too (rules written in
// place, a slot at a time, are not one atomic switch: sets that move a rule
// to another slot can pass a frame while they are written, indexed or not).
// Any other verdict is a packet that went by an index disagreeing with the
// rules.
func TestIndexConcurrentUpdate(t *testing.T) {
	a := []Rule{
		{Action: ActionDrop, Protocol: ProtocolTCP, DstPort: 1},
		{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999},
	}
	b := []Rule{
		{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 11},
		{Action: ActionDrop, DstPort: 9999},
		{Action: ActionPass, Protocol: ProtocolTCP, DstPort: 12},
		{Action: ActionDrop, Protocol: ProtocolUDP},
	}
	objs := loadObjects(t, xdpPass, a)
	in := frame.Build(udp4(9999, "x"))
	var stop atomic.Bool
	var wrong atomic.Int64
	var runs atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: in, Repeat: 100})
				if err != nil || got != xdpDrop {
					wrong.Add(1)
				}
				runs.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	updates := 0
	for time.Now().Before(deadline) {
		set := a
		if updates%2 == 0 {
			set = b
		}
		writeRuleSet(t, objs, set)
		updates++
	}
	stop.Store(true)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d of %d runs (100 packets each) did not drop during %d rule-set updates", wrong.Load(), runs.Load(), updates)
	}
	t.Logf("%d runs of 100 packets during %d rule-set updates, all dropped", runs.Load(), updates)
}
