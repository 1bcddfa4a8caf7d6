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
