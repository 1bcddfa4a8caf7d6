package xdpfilter

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

const (
	xdpDrop = 1
	xdpPass = 2
)

// loadObjects loads the program with the given default action and writes
// the rules as the shipped writer does: the rule set with its index
// (RuleSet.Entries).
func loadObjects(tb testing.TB, defaultAction uint32, rules []Rule) *xdpfilterObjects {
	tb.Helper()
	objs := loadEmpty(tb, defaultAction)
	writeRuleSet(tb, objs, rules)
	return objs
}

// loadShippedObjects loads the program and writes the rules as
// RuleSet.Entries lists them (small sets without an index).
func loadShippedObjects(tb testing.TB, defaultAction uint32, rules []Rule) *xdpfilterObjects {
	tb.Helper()
	objs := loadEmpty(tb, defaultAction)
	entries, err := RuleSet(rules).Entries()
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		writeEntry(tb, objs, e)
	}
	return objs
}

// loadScanObjects loads the program and writes the rules one slot at a
// time, without an index (rules written by hand): every packet scans.
func loadScanObjects(tb testing.TB, defaultAction uint32, rules []Rule) *xdpfilterObjects {
	tb.Helper()
	objs := loadEmpty(tb, defaultAction)
	for i, r := range rules {
		writeRule(tb, objs.Rules, uint32(i), r)
	}
	return objs
}

func loadEmpty(tb testing.TB, defaultAction uint32) *xdpfilterObjects {
	tb.Helper()
	privileged.RequireRoot(tb)
	spec, err := Spec()
	if err != nil {
		tb.Fatal(err)
	}
	if err := spec.Variables[DefaultActionConstant].Set(defaultAction); err != nil {
		tb.Fatal(err)
	}
	var objs xdpfilterObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { _ = objs.Close() })
	return &objs
}

// writeRuleSet writes the entries of RuleSet(rules) in their order, with
// the index whatever the set's size (RuleSet.Entries leaves small sets to
// the scan), so that the tests and benchmarks exercise the index.
func writeRuleSet(tb testing.TB, objs *xdpfilterObjects, rules []Rule) {
	tb.Helper()
	entries, err := RuleSet(rules).entries(0)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		writeEntry(tb, objs, e)
	}
}

func writeEntry(tb testing.TB, objs *xdpfilterObjects, e Entry) {
	tb.Helper()
	m := map[string]*ebpf.Map{RulesMap: objs.Rules, IndexMap: objs.RuleIndex, IndexSeqMap: objs.RuleIndexSeq}[e.Map]
	if m == nil {
		tb.Fatalf("entry for unknown map %q", e.Map)
	}
	if err := m.Update(e.Key, e.Value, ebpf.UpdateAny); err != nil {
		tb.Fatalf("write %s: %v", e.Map, err)
	}
}

func writeRule(tb testing.TB, m *ebpf.Map, index uint32, r Rule) {
	tb.Helper()
	k, err := RuleKey(index)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := r.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Update(k, v, ebpf.UpdateAny); err != nil {
		tb.Fatalf("write rule %d: %v", index, err)
	}
}

func hits(tb testing.TB, m *ebpf.Map, index uint32) Counter {
	tb.Helper()
	var perCPU []Counter
	if err := m.Lookup(index, &perCPU); err != nil {
		tb.Fatalf("read hits of rule %d: %v", index, err)
	}
	return Sum(perCPU)
}

// tableRules are the rules of the BPF_PROG_RUN table test, by index.
var tableRules = []Rule{
	// 0: UDP to 9999 carrying DEATH at payload offset 4.
	{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, PatternOffset: 4, Pattern: []byte("DEATH")},
	// 1: any TCP to 6666.
	{Action: ActionDrop, Protocol: ProtocolTCP, DstPort: 6666},
	// 2: DNS from 192.0.2.0/24.
	{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 53, Source: netip.MustParsePrefix("192.0.2.0/24")},
	// 3: anything from 2001:db8:bad::/48.
	{Action: ActionDrop, Source: netip.MustParsePrefix("2001:db8:bad::/48")},
	// 4: UDP to 7777 starting with de ad ?? (third byte masked out).
	{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 7777, Pattern: []byte{0xde, 0xad, 0x00}, Mask: []byte{0xff, 0xff, 0x00}},
	// 5: a switched-off rule that would drop all UDP to 5555.
	{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 5555, Disabled: true},
	// 6: allow 10.9.9.9 to TCP 8888, ahead of rule 7.
	{Action: ActionPass, Protocol: ProtocolTCP, DstPort: 8888, Source: netip.MustParsePrefix("10.9.9.9/32")},
	// 7: drop all other TCP to 8888.
	{Action: ActionDrop, Protocol: ProtocolTCP, DstPort: 8888},
}

var (
	v4a, v4b = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	v6a, v6b = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
)

func udp4(dport uint16, payload string) frame.Spec {
	return frame.Spec{Src: v4a, Dst: v4b, Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: dport, Payload: []byte(payload)}
}

func udp6(dport uint16, payload string) frame.Spec {
	return frame.Spec{Src: v6a, Dst: v6b, Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: dport, Payload: []byte(payload)}
}

func tcp(src, dst netip.Addr, dport uint16) frame.Spec {
	return frame.Spec{Src: src, Dst: dst, Protocol: frame.ProtocolTCP, SrcPort: 40000, DstPort: dport, Payload: []byte("data")}
}

func with(s frame.Spec, f func(*frame.Spec)) frame.Spec { f(&s); return s }

// mangle builds a frame and edits its bytes.
func mangle(s frame.Spec, f func([]byte) []byte) []byte { return f(frame.Build(s)) }

// TestProgRunTable runs the table on the rules written with their index
// (the shipped writer) and written one by one without it (scanned).
func TestProgRunTable(t *testing.T) {
	t.Run("indexed", func(t *testing.T) { progRunTable(t, loadObjects(t, xdpPass, tableRules)) })
	t.Run("scanned", func(t *testing.T) { progRunTable(t, loadScanObjects(t, xdpPass, tableRules)) })
}

func progRunTable(t *testing.T, objs *xdpfilterObjects) {
	bad4 := frame.Build(udp4(9999, "xxxxDEATHxx"))
	tests := []struct {
		name  string
		frame []byte
		want  uint32 // XDP verdict
		rule  int    // rule whose counter counts the frame, -1 for none
	}{
		{name: "udp4 good payload", frame: frame.Build(udp4(9999, "xxxxHELLOxx")), want: xdpPass, rule: -1},
		{name: "udp4 pattern at offset", frame: bad4, want: xdpDrop, rule: 0},
		{name: "udp4 pattern at wrong offset", frame: frame.Build(udp4(9999, "xxxDEATHxxx")), want: xdpPass, rule: -1},
		{name: "udp4 pattern cut by payload end", frame: frame.Build(udp4(9999, "xxxxDEAT")), want: xdpPass, rule: -1},
		{name: "udp4 pattern exactly at end", frame: frame.Build(udp4(9999, "xxxxDEATH")), want: xdpDrop, rule: 0},
		{name: "udp4 other port", frame: frame.Build(udp4(9998, "xxxxDEATH")), want: xdpPass, rule: -1},
		{name: "udp6 pattern", frame: frame.Build(udp6(9999, "xxxxDEATH")), want: xdpDrop, rule: 0},
		{name: "udp4 one vlan tag", frame: frame.Build(with(udp4(9999, "xxxxDEATH"), func(s *frame.Spec) { s.VLANs = []uint16{10} })), want: xdpDrop, rule: 0},
		{name: "udp6 two vlan tags", frame: frame.Build(with(udp6(9999, "xxxxDEATH"), func(s *frame.Spec) { s.VLANs = []uint16{10, 20} })), want: xdpDrop, rule: 0},
		{name: "three vlan tags are not parsed", frame: frame.Build(with(udp4(9999, "xxxxDEATH"), func(s *frame.Spec) { s.VLANs = []uint16{1, 2, 3} })), want: xdpPass, rule: -1},
		{name: "tcp4 port", frame: frame.Build(tcp(v4a, v4b, 6666)), want: xdpDrop, rule: 1},
		{name: "tcp6 port", frame: frame.Build(tcp(v6a, v6b, 6666)), want: xdpDrop, rule: 1},
		{name: "tcp4 other port", frame: frame.Build(tcp(v4a, v4b, 6667)), want: xdpPass, rule: -1},
		{name: "udp to the tcp port", frame: frame.Build(udp4(6666, "x")), want: xdpPass, rule: -1},
		{name: "dns from bad v4 prefix", frame: frame.Build(with(udp4(53, "q"), func(s *frame.Spec) { s.Src = netip.MustParseAddr("192.0.2.77") })), want: xdpDrop, rule: 2},
		{name: "dns from neighbour prefix", frame: frame.Build(with(udp4(53, "q"), func(s *frame.Spec) { s.Src = netip.MustParseAddr("192.0.3.77") })), want: xdpPass, rule: -1},
		{name: "dns over v6", frame: frame.Build(udp6(53, "q")), want: xdpPass, rule: -1},
		{name: "tcp from bad v6 prefix", frame: frame.Build(tcp(netip.MustParseAddr("2001:db8:bad:1::5"), v6b, 80)), want: xdpDrop, rule: 3},
		{name: "udp from bad v6 prefix", frame: frame.Build(with(udp6(1, "z"), func(s *frame.Spec) { s.Src = netip.MustParseAddr("2001:db8:bad:ffff::1") })), want: xdpDrop, rule: 3},
		{name: "tcp from next v6 prefix", frame: frame.Build(tcp(netip.MustParseAddr("2001:db8:bae::5"), v6b, 80)), want: xdpPass, rule: -1},
		{name: "masked pattern matches", frame: frame.Build(udp4(7777, "\xde\xad\x42rest")), want: xdpDrop, rule: 4},
		{name: "masked pattern differs", frame: frame.Build(udp4(7777, "\xde\xae\x42rest")), want: xdpPass, rule: -1},
		{name: "disabled rule", frame: frame.Build(udp4(5555, "x")), want: xdpPass, rule: -1},
		{name: "allow rule first", frame: frame.Build(tcp(netip.MustParseAddr("10.9.9.9"), v4b, 8888)), want: xdpPass, rule: 6},
		{name: "drop rule after allow", frame: frame.Build(tcp(netip.MustParseAddr("10.9.9.8"), v4b, 8888)), want: xdpDrop, rule: 7},
		{name: "ethernet padding after datagram", frame: append(bytes.Clone(bad4), make([]byte, 20)...), want: xdpDrop, rule: 0},
		{
			name: "ip total length hides the payload",
			frame: mangle(udp4(9999, "xxxxDEATH"), func(b []byte) []byte {
				binary.BigEndian.PutUint16(b[14+2:], 20+8) // the UDP length now overruns the datagram
				return b
			}),
			want: xdpPass, rule: -1,
		},
		{
			name: "ip total length beyond frame",
			frame: mangle(udp4(9999, "xxxxDEATH"), func(b []byte) []byte {
				binary.BigEndian.PutUint16(b[14+2:], 1500)
				return b
			}),
			want: xdpPass, rule: -1,
		},
		{
			name: "ihl below 5",
			frame: mangle(udp4(9999, "xxxxDEATH"), func(b []byte) []byte {
				b[14] = 0x44
				return b
			}),
			want: xdpPass, rule: -1,
		},
		{
			name: "ip version not 4 under ethertype ipv4",
			frame: mangle(udp4(9999, "xxxxDEATH"), func(b []byte) []byte {
				b[14] = 0x65
				return b
			}),
			want: xdpPass, rule: -1,
		},
		{
			name: "ipv4 options move the udp header",
			frame: mangle(udp4(9999, "xxxxDEATH"), func(b []byte) []byte {
				ip := append([]byte(nil), b[14:34]...)
				ip[0] = 0x46 // ihl 6: one word of options (NOPs)
				binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+4)
				out := append(append(append([]byte(nil), b[:14]...), ip...), 1, 1, 1, 1)
				return append(out, b[34:]...)
			}),
			want: xdpDrop, rule: 0,
		},
		{
			name: "udp length below header",
			frame: mangle(udp4(9999, "xxxxDEATH"), func(b []byte) []byte {
				binary.BigEndian.PutUint16(b[34+4:], 4)
				return b
			}),
			want: xdpPass, rule: -1,
		},
		{
			name: "tcp data offset beyond frame",
			frame: mangle(tcp(v4a, v4b, 6666), func(b []byte) []byte {
				b[34+12] = 15 << 4
				return b
			}),
			want: xdpPass, rule: -1,
		},
		{
			name: "ipv6 payload length beyond frame",
			frame: mangle(udp6(9999, "xxxxDEATH"), func(b []byte) []byte {
				binary.BigEndian.PutUint16(b[14+4:], 900)
				return b
			}),
			want: xdpPass, rule: -1,
		},
		{name: "ipv4 non-first fragment", frame: frame.Build(with(udp4(9999, "\x9c\x40\x27\x0f\x00\x11\x00\x00xxxxDEATH"), func(s *frame.Spec) { s.FragmentOffset = 100 })), want: xdpPass, rule: -1},
		{name: "ipv6 non-first fragment", frame: frame.Build(with(udp6(9999, "\x9c\x40\x27\x0f\x00\x11\x00\x00xxxxDEATH"), func(s *frame.Spec) { s.FragmentOffset = 100 })), want: xdpPass, rule: -1},
		{name: "ipv6 hop-by-hop header before udp", frame: withIPv6Ext(frame.Build(udp6(9999, "xxxxDEATH")), 0, 8), want: xdpDrop, rule: 0},
		{name: "ipv6 two extension headers", frame: withIPv6Ext(withIPv6Ext(frame.Build(udp6(9999, "xxxxDEATH")), 60, 16), 0, 8), want: xdpDrop, rule: 0},
		{name: "ipv6 extension header overruns payload", frame: mangle(udp6(9999, "xxxxDEATH"), func(b []byte) []byte {
			b = withIPv6Ext(b, 0, 8)
			b[14+40+1] = 200 // hdrlen: (200+1)*8 bytes, far beyond the datagram
			return b
		}), want: xdpPass, rule: -1},
		{name: "ipv6 first fragment", frame: withIPv6Ext(frame.Build(udp6(9999, "xxxxDEATH")), 44, 8), want: xdpDrop, rule: 0},
		{name: "arp", frame: mangle(udp4(9999, "xxxxDEATH"), func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }), want: xdpPass, rule: -1},
		{name: "ethernet header only", frame: bad4[:14], want: xdpPass, rule: -1},
	}
	wantHits := make([]uint64, len(tableRules))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: tt.frame})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("verdict %d, want %d", got, tt.want)
			}
		})
		if tt.rule >= 0 {
			wantHits[tt.rule]++
		}
	}
	// Every truncation of a packet of death is malformed and passes.
	for n := 14; n < len(bad4); n++ {
		got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: bad4[:n]})
		if err != nil {
			t.Fatal(err)
		}
		if got != xdpPass {
			t.Errorf("truncated to %d of %d bytes: verdict %d, want pass", n, len(bad4), got)
		}
	}
	for i, want := range wantHits {
		if got := hits(t, objs.RuleHits, uint32(i)).Packets; got != want {
			t.Errorf("rule %d counted %d frames, want %d", i, got, want)
		}
	}
}

// withIPv6Ext inserts an IPv6 extension header of type typ and size bytes
// (a multiple of 8; a fragment header is 8 bytes with offset 0) right after
// the IPv6 header of an untagged frame.
func withIPv6Ext(b []byte, typ uint8, size int) []byte {
	const l3 = 14
	ext := make([]byte, size)
	ext[0] = b[l3+6] // the next header moves into the extension header
	if typ != 44 {
		ext[1] = uint8(size/8 - 1)
	}
	b[l3+6] = typ
	binary.BigEndian.PutUint16(b[l3+4:], binary.BigEndian.Uint16(b[l3+4:])+uint16(size))
	out := append(append(append([]byte(nil), b[:l3+40]...), ext...), b[l3+40:]...)
	return out
}

func TestDefaultActionConstant(t *testing.T) {
	objs := loadObjects(t, xdpDrop, tableRules[:1])
	got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(1, "anything"))})
	if err != nil {
		t.Fatal(err)
	}
	if got != xdpDrop {
		t.Fatalf("unmatched frame with default_action=XDP_DROP: verdict %d", got)
	}
}

func TestEmptySlotEndsRuleList(t *testing.T) {
	// Rule at index 1 is never reached: slot 0 is empty.
	objs := loadObjects(t, xdpPass, nil)
	writeRule(t, objs.Rules, 1, Rule{Action: ActionDrop})
	got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(1, "x"))})
	if err != nil {
		t.Fatal(err)
	}
	if got != xdpPass {
		t.Fatalf("verdict %d, want pass", got)
	}
	writeRule(t, objs.Rules, 0, Rule{Action: ActionPass, Protocol: ProtocolTCP})
	if got, _ := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(1, "x"))}); got != xdpDrop {
		t.Fatalf("after filling slot 0: verdict %d, want drop by rule 1", got)
	}
}

func TestLastSlotReached(t *testing.T) {
	// Every slot filled with rules for other ports, the last one matching:
	// the scan covers all MaxRules slots.
	rules := make([]Rule, MaxRules)
	for i := range rules {
		rules[i] = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: uint16(20000 + i)}
	}
	rules[MaxRules-1] = Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999}
	objs := loadObjects(t, xdpPass, rules)
	if got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(9999, "x"))}); err != nil || got != xdpDrop {
		t.Fatalf("frame for the rule in slot %d: verdict %d (%v), want drop", MaxRules-1, got, err)
	}
	if got := hits(t, objs.RuleHits, MaxRules-1).Packets; got != 1 {
		t.Fatalf("slot %d counted %d frames, want 1", MaxRules-1, got)
	}
	if got, _ := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(9998, "x"))}); got != xdpPass {
		t.Fatalf("frame no rule matches: verdict %d, want pass", got)
	}
}

func TestPatternLengths(t *testing.T) {
	// Patterns are compared a word (8 bytes) at a time: every length from 1
	// to PatternMax, ending at the last byte of the frame or well inside it,
	// must match exactly its bytes, and a difference in its last byte must
	// not match.
	for _, n := range []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, PatternMax} {
		pattern := make([]byte, n)
		for i := range pattern {
			pattern[i] = byte('a' + i%26)
		}
		objs := loadObjects(t, xdpPass, []Rule{{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, PatternOffset: 3, Pattern: pattern}})
		for _, tail := range []string{"", "trailing-bytes-after-the-pattern"} {
			payload := "xyz" + string(pattern) + tail
			wrong := []byte(payload)
			wrong[3+n-1] ^= 0x20
			for _, tc := range []struct {
				payload string
				want    uint32
			}{{payload, xdpDrop}, {string(wrong), xdpPass}} {
				got, err := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(9999, tc.payload))})
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("pattern of %d bytes, payload %q: verdict %d, want %d", n, tc.payload, got, tc.want)
				}
			}
		}
	}
}

func TestMaskIgnoredPastPatternLength(t *testing.T) {
	// A hand-written rule may leave mask bytes set past the pattern's
	// length; only the pattern's own bytes are compared.
	v, err := Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999, Pattern: []byte("AB")}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for i := 32 + PatternMax + 2; i < RuleSize; i++ {
		v[i] = 0xff // mask
	}
	for i := 32 + 2; i < 32+PatternMax; i++ {
		v[i] = 'Z' // pattern bytes past the length
	}
	objs := loadObjects(t, xdpPass, nil)
	k, _ := RuleKey(0)
	if err := objs.Rules.Update(k, v, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if got, _ := objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: frame.Build(udp4(9999, "ABcdefghijklmnop"))}); got != xdpDrop {
		t.Fatalf("verdict %d, want drop", got)
	}
}
