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
// them, the index, the commit word.
func ExampleRuleSet_Entries() {
	rules := xdpfilter.RuleSet{
		{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: 9999, Pattern: []byte("DEATH")},
		{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolTCP, DstPort: 6666},
	}
	entries, err := rules.Entries()
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		key, _ := e.Hex()
		fmt.Printf("%s %s\n", e.Map, key)
	}
	// Output:
	// rule_index_seq 00000000
	// rules 00000000
	// rules 01000000
	// rules 02000000
	// rule_index 0f270100
	// rule_index 0a1a0000
	// rule_index_seq 01000000
}
