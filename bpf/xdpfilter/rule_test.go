package xdpfilter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func TestRuleSizeMatchesC(t *testing.T) {
	if got := binary.Size(xdpfilterRule{}); got != RuleSize {
		t.Fatalf("C struct rule is %d bytes, RuleSize is %d", got, RuleSize)
	}
}

func TestRuleMarshalMatchesCLayout(t *testing.T) {
	r := Rule{
		Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 9999,
		Source:  netip.MustParsePrefix("2001:db8:bad::/48"),
		Pattern: []byte("DEATH"), Mask: []byte{0xff, 0xff, 0, 0xff, 0xff}, PatternOffset: 3,
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var c xdpfilterRule
	if err := binary.Read(bytes.NewReader(b), binary.NativeEndian, &c); err != nil {
		t.Fatal(err)
	}
	// The generated struct reads the C layout; ports are in network order.
	if c.Flags != flagActive || c.Action != 1 || c.L4Proto != 17 || c.Family != 6 ||
		c.DstPort != binary.NativeEndian.Uint16([]byte{0x27, 0x0f}) ||
		c.SrcPrefixLen != 48 || c.PatternLen != 5 || c.PatternOffset != 3 ||
		c.Pattern[4] != 'H' || c.Mask[2] != 0 || c.Mask[3] != 0xff || c.Mask[5] != 0 {
		t.Fatalf("C view of the rule: %+v", c)
	}
	var back Rule
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back.Source != r.Source || back.DstPort != 9999 || !bytes.Equal(back.Pattern, r.Pattern) ||
		!bytes.Equal(back.Mask, r.Mask) || back.Family != FamilyIPv6 {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestRuleValidation(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		ok   bool // MarshalBinary succeeds
	}{
		{name: "drop udp port", rule: Rule{Action: ActionDrop, Protocol: ProtocolUDP, DstPort: 53}, ok: true},
		{name: "no action", rule: Rule{Protocol: ProtocolUDP}},
		{name: "icmp not supported", rule: Rule{Action: ActionDrop, Protocol: 1}},
		{name: "pattern too long", rule: Rule{Action: ActionDrop, Pattern: make([]byte, PatternMax+1)}},
		{name: "longest pattern", rule: Rule{Action: ActionDrop, Pattern: make([]byte, PatternMax)}, ok: true},
		{name: "mask length differs", rule: Rule{Action: ActionDrop, Pattern: []byte("ab"), Mask: []byte{1}}},
		{name: "family contradicts source", rule: Rule{Action: ActionDrop, Family: FamilyIPv6, Source: netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "unknown family", rule: Rule{Action: ActionDrop, Family: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.rule.MarshalBinary()
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("err %v is not ErrInvalidRule", err)
			}
		})
	}
}

func TestMapEntryHex(t *testing.T) {
	k, v, err := Rule{Action: ActionDrop, Protocol: ProtocolTCP, DstPort: 443}.MapEntry(2)
	if err != nil {
		t.Fatal(err)
	}
	if k != "02000000" {
		t.Errorf("key %s, want 02000000 (little-endian uint32 index)", k)
	}
	if len(v) != 2*RuleSize || v[:12] != "0101060001bb" /* active, drop, tcp, any family, port 443 big-endian */ {
		t.Errorf("value %s", v)
	}
	if _, _, err := (Rule{Action: ActionDrop}).MapEntry(MaxRules); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("index out of range: %v", err)
	}
}
