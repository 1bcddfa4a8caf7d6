// Package xdpfilter is the xdp-pod-filter program: an XDP program that drops
// packets of death at the NIC.
//
// Rules are values of the [RulesMap] array map, evaluated in index order; the
// first rule that matches decides the verdict, and the list ends at the first
// slot that was never written (all zero). A frame that no rule matches gets
// the [DefaultActionConstant] verdict (pass). A rule matches on protocol
// (TCP, UDP or both), destination port, an optional IPv4 or IPv6 source
// prefix and an optional masked payload pattern of up to [PatternMax] bytes
// at an offset into the L4 payload. Frames may carry up to two 802.1Q/802.1ad
// tags. Truncated or inconsistent frames match no rule.
//
// Rules are read on every packet: writing one into the map (for example
// through a BpfProgram's spec.mapEntries) takes effect at once, without
// reloading the program.
//
// A whole rule set is best written with [RuleSet.Entries]: the rules plus,
// from [IndexMinRules] rules on, an index (per protocol and destination port, the slots a packet can
// match, in [IndexMap]), so a packet evaluates those slots instead of
// scanning every one (64 rules, BPF_PROG_RUN: ≈ 40 ns a packet instead of
// ≈ 300). The index is trusted only while a seqlock ([IndexSeqMap]) says it
// describes the rules in the map; while a set is being written, or for
// rules written one by one with [Rule.MapEntry], packets scan the slots as
// before. The entries must be written in their order, which the agent does
// with a BpfProgram's spec.mapEntries (at most 194 entries for 64 rules,
// within its 256).
//
// Patterns match per frame as the hook sees it: in generic (skb) mode a
// frame may be several TCP segments merged by GRO, and a pattern then
// matches only at its offset from the first segment's payload.
package xdpfilter

import (
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"

	"github.com/bpfleet/bpfleet/bpf/internal/counters"
)

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "xdp-pod-filter"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "xdpfilter_bpfel.o"
	// ProgramName is the XDP program (its C function name).
	ProgramName = "xdp_pod_filter"
	// RulesMap is the array map of rules: key uint32 index, value [Rule].
	RulesMap = "rules"
	// HitsMap is the per-CPU array of [Counter], one per rule index.
	HitsMap = "rule_hits"
	// DefaultActionConstant is the volatile const holding the verdict for
	// frames no rule matches (an XDP action, XDP_PASS by default).
	DefaultActionConstant = "default_action"
)

// Limits of the program's maps.
const (
	// MaxRules is the number of rule slots.
	MaxRules = 64
	// PatternMax is the longest payload pattern.
	PatternMax = 64
	// RuleSize is the size of a rule in the map.
	RuleSize = 32 + 2*PatternMax
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

// Action is the verdict of a matching rule (the XDP action codes).
type Action uint8

const (
	// ActionDrop drops the frame (XDP_DROP).
	ActionDrop Action = 1
	// ActionPass passes the frame to the kernel (XDP_PASS), ahead of any
	// later rule that would drop it.
	ActionPass Action = 2
)

// Protocol is the transport protocol a rule matches.
type Protocol uint8

const (
	// ProtocolAny matches TCP and UDP.
	ProtocolAny Protocol = 0
	// ProtocolTCP matches TCP.
	ProtocolTCP Protocol = 6
	// ProtocolUDP matches UDP.
	ProtocolUDP Protocol = 17
)

// Family is the IP version a rule matches.
type Family uint8

const (
	// FamilyAny matches IPv4 and IPv6.
	FamilyAny Family = 0
	// FamilyIPv4 matches IPv4 only.
	FamilyIPv4 Family = 4
	// FamilyIPv6 matches IPv6 only.
	FamilyIPv6 Family = 6
)

// Flags of a rule slot in the map.
const (
	flagActive   = 1
	flagDisabled = 2
)

// ErrInvalidRule is returned for a rule the program cannot express.
var ErrInvalidRule = errors.New("invalid rule")

// Rule is one packet-of-death rule. The zero value of every match field
// matches anything.
type Rule struct {
	// Action is the verdict when the rule matches (ActionDrop or ActionPass).
	Action Action
	// Protocol restricts the transport protocol.
	Protocol Protocol
	// Family restricts the IP version; a Source prefix implies it.
	Family Family
	// DstPort restricts the destination port (0: any).
	DstPort uint16
	// Source restricts the source address to a prefix (zero value: any).
	Source netip.Prefix
	// PatternOffset is where Pattern starts, from the first payload byte.
	PatternOffset uint16
	// Pattern is the payload bytes to match (empty: no payload match).
	Pattern []byte
	// Mask selects the pattern bits that must match; nil means all of them,
	// otherwise it has Pattern's length.
	Mask []byte
	// Disabled keeps the slot (so the rules after it still apply) but
	// switches the rule off.
	Disabled bool
}

// MarshalBinary encodes the rule in the layout of the rules map's value
// (RuleSize bytes; ports and addresses in network order).
func (r Rule) MarshalBinary() ([]byte, error) {
	if r.Action != ActionDrop && r.Action != ActionPass {
		return nil, fmt.Errorf("%w: action %d", ErrInvalidRule, r.Action)
	}
	if r.Protocol != ProtocolAny && r.Protocol != ProtocolTCP && r.Protocol != ProtocolUDP {
		return nil, fmt.Errorf("%w: protocol %d", ErrInvalidRule, r.Protocol)
	}
	if len(r.Pattern) > PatternMax {
		return nil, fmt.Errorf("%w: pattern of %d bytes, at most %d", ErrInvalidRule, len(r.Pattern), PatternMax)
	}
	if r.Mask != nil && len(r.Mask) != len(r.Pattern) {
		return nil, fmt.Errorf("%w: mask of %d bytes for a pattern of %d", ErrInvalidRule, len(r.Mask), len(r.Pattern))
	}
	family := r.Family
	if r.Source.IsValid() {
		src := r.Source.Masked()
		want := FamilyIPv6
		if src.Addr().Is4() {
			want = FamilyIPv4
		}
		if family != FamilyAny && family != want {
			return nil, fmt.Errorf("%w: family %d with source %s", ErrInvalidRule, family, src)
		}
		family = want
	}
	if family != FamilyAny && family != FamilyIPv4 && family != FamilyIPv6 {
		return nil, fmt.Errorf("%w: family %d", ErrInvalidRule, family)
	}

	b := make([]byte, RuleSize)
	b[0] = flagActive
	if r.Disabled {
		b[0] |= flagDisabled
	}
	b[1] = byte(r.Action)
	b[2] = byte(r.Protocol)
	b[3] = byte(family)
	binary.BigEndian.PutUint16(b[4:], r.DstPort)
	if r.Source.IsValid() {
		src := r.Source.Masked()
		b[6] = byte(src.Bits())
		a := src.Addr()
		if a.Is4() {
			a4 := a.As4()
			copy(b[16:], a4[:])
		} else {
			a16 := a.As16()
			copy(b[16:], a16[:])
		}
	}
	b[7] = byte(len(r.Pattern))
	binary.NativeEndian.PutUint16(b[8:], r.PatternOffset)
	copy(b[32:], r.Pattern)
	mask := b[32+PatternMax:]
	for i := range r.Pattern {
		mask[i] = 0xff
		if r.Mask != nil {
			mask[i] = r.Mask[i]
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a rule from the rules map's value layout.
func (r *Rule) UnmarshalBinary(b []byte) error {
	if len(b) != RuleSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalidRule, len(b), RuleSize)
	}
	if b[0]&flagActive == 0 {
		return fmt.Errorf("%w: empty slot", ErrInvalidRule)
	}
	n := int(b[7])
	if n > PatternMax {
		return fmt.Errorf("%w: pattern of %d bytes", ErrInvalidRule, n)
	}
	*r = Rule{
		Action:        Action(b[1]),
		Protocol:      Protocol(b[2]),
		Family:        Family(b[3]),
		DstPort:       binary.BigEndian.Uint16(b[4:]),
		PatternOffset: binary.NativeEndian.Uint16(b[8:]),
		Disabled:      b[0]&flagDisabled != 0,
	}
	if bits := int(b[6]); bits > 0 {
		var addr netip.Addr
		if r.Family == FamilyIPv4 {
			addr = netip.AddrFrom4([4]byte(b[16:20]))
		} else {
			addr = netip.AddrFrom16([16]byte(b[16:32]))
		}
		p, err := addr.Prefix(bits)
		if err != nil {
			return fmt.Errorf("%w: source prefix: %w", ErrInvalidRule, err)
		}
		r.Source = p
	}
	if n > 0 {
		r.Pattern = append([]byte(nil), b[32:32+n]...)
		r.Mask = append([]byte(nil), b[32+PatternMax:32+PatternMax+n]...)
	}
	return nil
}

// RuleKey encodes a rule index as a key of the rules map.
func RuleKey(index uint32) ([]byte, error) {
	if index >= MaxRules {
		return nil, fmt.Errorf("%w: index %d, at most %d", ErrInvalidRule, index, MaxRules-1)
	}
	return binary.NativeEndian.AppendUint32(nil, index), nil
}

// MapEntry returns the rule at index as the hex key and value of a
// BpfProgram spec.mapEntries item for the RulesMap map.
func (r Rule) MapEntry(index uint32) (key, value string, err error) {
	k, err := RuleKey(index)
	if err != nil {
		return "", "", err
	}
	v, err := r.MarshalBinary()
	if err != nil {
		return "", "", err
	}
	return hex.EncodeToString(k), hex.EncodeToString(v), nil
}

// Counter is the value of HitsMap on one CPU: the frames that matched the rule and the sum of their lengths.
type Counter = counters.Counter

// Sum adds up per-CPU counters.
func Sum(perCPU []Counter) Counter { return counters.Sum(perCPU) }
