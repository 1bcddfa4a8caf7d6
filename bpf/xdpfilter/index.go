package xdpfilter

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// The index: per protocol and destination port, the rule slots a packet can
// match, so that a packet evaluates those slots only instead of scanning
// every slot. It is derived from the rules and written with them by
// [RuleSet.Entries]; the program trusts it only while a seqlock of two
// words says it describes the rules in the map (see IndexSeqMap), and scans
// otherwise. Rules written one by one ([Rule.MapEntry]) are always scanned.
const (
	// IndexMap is the array map of index entries: key uint32 (TCP port p:
	// p; UDP port p: 65536+p; rules without a port: 131072), value 16 bytes:
	// a uint64 bitmap of slots and the uint64 generation it belongs to.
	IndexMap = "rule_index"
	// IndexSeqMap is the two-entry array map that says which generation the
	// index describes: key 0 (begin) is written before the rules and the
	// index, key 1 (commit) after them; value 16 bytes: the uint64
	// generation and the uint32 number of rules.
	IndexSeqMap = "rule_index_seq"

	// IndexKeys is the number of keys of IndexMap.
	IndexKeys = indexAnyPort + 1
	// IndexEntrySize is the size of an IndexMap or IndexSeqMap value.
	IndexEntrySize = 16
)

const (
	indexTCP     = 0
	indexUDP     = 1 << 16
	indexAnyPort = 2 << 16
	seqBegin     = 0
	seqCommit    = 1
)

// IndexMinRules is the smallest rule set [RuleSet.Entries] writes an index
// for. Smaller sets are scanned: on live frames the index's extra map reads
// cost about what scanning a few slots does (3 rules: 0.71 of the XDP_DROP
// ceiling indexed against 0.81 scanned at load 17-22, a tie at load 3-8;
// 64 rules: 0.72 against 0.25; see BENCHMARKS.md). 17 is an estimate of the
// break-even, not a measurement.
const IndexMinRules = 17

// RuleSet is a whole rule list, slot 0 first (first match wins).
type RuleSet []Rule

// Entry is one map entry of an encoded rule set.
type Entry struct {
	// Map is RulesMap, IndexMap or IndexSeqMap.
	Map string
	// Key and Value are the bytes in the map's layout.
	Key, Value []byte
}

// Hex returns the key and value as a BpfProgram spec.mapEntries item takes
// them.
func (e Entry) Hex() (key, value string) {
	return hex.EncodeToString(e.Key), hex.EncodeToString(e.Value)
}

// Entries encodes the rule set as the entries of RulesMap, IndexMap and
// IndexSeqMap, in the order they must be written: the seqlock's begin word,
// the rules (and an empty slot after the last one), the index entries, the
// commit word. Written in this order over any earlier set (also one written
// in this order), no packet sees an index that disagrees with the rules it
// evaluates: until the commit word is written every packet scans the slots.
// Entries of an earlier set that this one leaves out (index keys, slots
// after the empty one) are harmless: they are ignored, and whoever removes
// them may do so at any time after the commit.
//
// A set of fewer than [IndexMinRules] rules gets no index: its seqlock
// words say generation 0 (begin first, commit last), so packets scan.
func (s RuleSet) Entries() ([]Entry, error) {
	return s.entries(IndexMinRules)
}

// entries is Entries with an index for sets of at least indexMin rules.
func (s RuleSet) entries(indexMin int) ([]Entry, error) {
	if len(s) > MaxRules {
		return nil, fmt.Errorf("%w: %d rules, at most %d", ErrInvalidRule, len(s), MaxRules)
	}
	values := make([][]byte, len(s))
	for i, r := range s {
		v, err := r.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		values[i] = v
	}
	gen := generation(values)
	indexed := len(s) >= indexMin
	if !indexed {
		gen = 0
	}

	slots := map[uint32]uint64{}
	var keys []uint32
	add := func(k uint32, slot int) {
		if _, ok := slots[k]; !ok {
			keys = append(keys, k)
		}
		slots[k] |= 1 << slot
	}
	for i, r := range s {
		if !indexed {
			break
		}
		if r.Disabled {
			continue // never matches: no packet needs to evaluate it
		}
		switch {
		case r.DstPort == 0:
			add(indexAnyPort, i)
		case r.Protocol == ProtocolTCP:
			add(indexTCP+uint32(r.DstPort), i)
		case r.Protocol == ProtocolUDP:
			add(indexUDP+uint32(r.DstPort), i)
		default:
			add(indexTCP+uint32(r.DstPort), i)
			add(indexUDP+uint32(r.DstPort), i)
		}
	}

	seq := seqValue(gen, len(s))
	out := []Entry{{Map: IndexSeqMap, Key: u32(seqBegin), Value: seq}}
	for i, v := range values {
		out = append(out, Entry{Map: RulesMap, Key: u32(uint32(i)), Value: v})
	}
	if len(s) < MaxRules {
		out = append(out, Entry{Map: RulesMap, Key: u32(uint32(len(s))), Value: make([]byte, RuleSize)})
	}
	for _, k := range keys {
		v := binary.NativeEndian.AppendUint64(nil, slots[k])
		v = binary.NativeEndian.AppendUint64(v, gen)
		out = append(out, Entry{Map: IndexMap, Key: u32(k), Value: v})
	}
	return append(out, Entry{Map: IndexSeqMap, Key: u32(seqCommit), Value: seq}), nil
}

// generation is the rule set's generation: a hash of its encoded rules,
// never 0 (0 says "no index").
func generation(values [][]byte) uint64 {
	h := sha256.New()
	h.Write(u32(uint32(len(values))))
	for _, v := range values {
		h.Write(v)
	}
	gen := binary.LittleEndian.Uint64(h.Sum(nil)[:8])
	if gen == 0 {
		gen = 1
	}
	return gen
}

func seqValue(gen uint64, rules int) []byte {
	v := binary.NativeEndian.AppendUint64(nil, gen)
	v = binary.NativeEndian.AppendUint32(v, uint32(rules))
	return binary.NativeEndian.AppendUint32(v, 0)
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
