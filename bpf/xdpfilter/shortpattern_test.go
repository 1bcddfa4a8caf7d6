package xdpfilter

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/frame"
)

// TestShortPatterns covers payload patterns around the eight-byte word the
// filter compares at a time, and around the end of the frame's data, where
// the compare copies the bytes out instead (bpf_xdp_load_bytes): patterns
// of 1 to 9 bytes, at payload offsets 0 and 3, followed by 0 to 12 more
// payload bytes, matching, differing in their last byte, or differing only
// in the bytes after the pattern (which must not count); a masked pattern;
// and a pattern behind a source prefix. Each frame's verdict and the
// rule's counter must be the reference's, with the index and scanned.
func TestShortPatterns(t *testing.T) {
	type probe struct {
		name string
		in   []byte
		want uint32
		rule int
	}
	var rules []Rule
	var probes []probe
	port := uint16(30000)
	for _, n := range []int{1, 2, 7, 8, 9} {
		for _, off := range []uint16{0, 3} {
			pattern := []byte("ABCDEFGHI")[:n]
			rules = append(rules, Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: port, PatternOffset: off, Pattern: pattern})
			rule := len(rules) - 1
			for _, tail := range []int{0, 1, 6, 7, 8, 12} {
				payload := func(p []byte, after byte) []byte {
					b := bytes.Repeat([]byte{'.'}, int(off))
					b = append(b, p...)
					for i := range tail {
						b = append(b, after+byte(i))
					}
					return b
				}
				differs := bytes.Clone(pattern)
				differs[n-1] ^= 0x20
				name := fmt.Sprintf("len %d off %d tail %d", n, off, tail)
				probes = append(probes,
					probe{name + " matches", frame.Build(udp4(port, string(payload(pattern, 'x')))), xdpDrop, rule},
					probe{name + " last byte differs", frame.Build(udp4(port, string(payload(differs, 'x')))), xdpPass, -1},
				)
				if tail > 0 {
					probes = append(probes, probe{name + " byte after differs", frame.Build(udp4(port, string(payload(pattern, 'I'+1)))), xdpDrop, rule})
				}
			}
			if n > 1 {
				probes = append(probes, probe{fmt.Sprintf("len %d off %d cut by the payload end", n, off),
					frame.Build(udp4(port, string(append(bytes.Repeat([]byte{'.'}, int(off)), pattern[:n-1]...)))), xdpPass, -1})
			}
			port++
		}
	}
	rules = append(rules, Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: port, Pattern: []byte{0xde, 0x00, 0xbe}, Mask: []byte{0xff, 0x00, 0xff}})
	probes = append(probes,
		probe{"masked byte ignored", frame.Build(udp4(port, "\xde\x77\xbe-and-more-bytes")), xdpDrop, len(rules) - 1},
		probe{"unmasked byte differs", frame.Build(udp4(port, "\xde\x77\xbf-and-more-bytes")), xdpPass, -1},
	)
	port++
	rules = append(rules, Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: port, Source: netip.MustParsePrefix("10.0.0.0/24"), Pattern: []byte("EVIL")})
	probes = append(probes,
		probe{"prefix and pattern match", frame.Build(udp4(port, "EVIL-and-more-bytes")), xdpDrop, len(rules) - 1},
		probe{"pattern without the prefix", frame.Build(with(udp4(port, "EVIL-and-more-bytes"), func(s *frame.Spec) { s.Src = netip.MustParseAddr("10.0.1.1") })), xdpPass, -1},
	)
	if len(rules) > MaxRules {
		t.Fatalf("%d rules, more than %d slots", len(rules), MaxRules)
	}

	for _, set := range []struct {
		name string
		objs *xdpfilterObjects
	}{
		{"indexed", loadObjects(t, xdpPass, rules)},
		{"scanned", loadScanObjects(t, xdpPass, rules)},
	} {
		t.Run(set.name, func(t *testing.T) {
			wantHits := make([]uint64, len(rules))
			for _, p := range probes {
				got, err := set.objs.XdpPodFilter.Run(&ebpf.RunOptions{Data: p.in})
				if err != nil {
					t.Fatal(err)
				}
				if got != p.want {
					t.Errorf("%s: verdict %d, want %d", p.name, got, p.want)
				}
				if p.rule >= 0 {
					wantHits[p.rule]++
				}
			}
			for i, want := range wantHits {
				if got := hits(t, set.objs.RuleHits, uint32(i)).Packets; got != want {
					t.Errorf("rule %d (%d-byte pattern) counted %d frames, want %d", i, len(rules[i].Pattern), got, want)
				}
			}
		})
	}
}
