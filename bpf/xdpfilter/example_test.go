package xdpfilter_test

import (
	"fmt"

	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
)

// A packet-of-death rule as a BpfProgram spec.mapEntries item: drop UDP to
// port 9999 whose payload starts with "DEATH".
func ExampleRule_MapEntry() {
	rule := xdpfilter.Rule{
		Action:   xdpfilter.ActionDrop,
		Protocol: xdpfilter.ProtocolUDP,
		DstPort:  9999,
		Pattern:  []byte("DEATH"),
	}
	key, value, err := rule.MapEntry(0)
	if err != nil {
		panic(err)
	}
	fmt.Printf("map: %s\nkey: %s\nvalue starts: %s\n", xdpfilter.RulesMap, key, value[:24])
	// Output:
	// map: rules
	// key: 00000000
	// value starts: 01011100270f000500000000
}

// A rule set as BpfProgram spec.mapEntries items, in the order the agent
// writes them: the seqlock's begin word, the rules and the empty slot after
// them, the index (for sets of at least IndexMinRules rules), the commit
// word.
func ExampleRuleSet_Entries() {
	var rules xdpfilter.RuleSet
	for port := range uint16(xdpfilter.IndexMinRules) {
		rules = append(rules, xdpfilter.Rule{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: 9000 + port, Pattern: []byte("DEATH")})
	}
	entries, err := rules.Entries()
	if err != nil {
		panic(err)
	}
	count := map[string]int{}
	for _, e := range entries {
		count[e.Map]++
	}
	first, _ := entries[0].Hex()
	fmt.Printf("first: %s %s\n", entries[0].Map, first)
	fmt.Printf("%d rules, %d index entries, %d seqlock words\n", count[xdpfilter.RulesMap], count[xdpfilter.IndexMap], count[xdpfilter.IndexSeqMap])
	last, _ := entries[len(entries)-1].Hex()
	fmt.Printf("last: %s %s\n", entries[len(entries)-1].Map, last)
	// Output:
	// first: rule_index_seq 00000000
	// 18 rules, 17 index entries, 2 seqlock words
	// last: rule_index_seq 01000000
}
