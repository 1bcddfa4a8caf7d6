package xdplb_test

import (
	"fmt"

	"github.com/bpfleet/bpfleet/bpf/xdplb"
)

// Removing a backend with MaglevRebuild moves only the slots (and so the
// flows) of that backend.
func ExampleMaglevRebuild() {
	before := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
	after := []string{"10.0.0.1:80", "10.0.0.3:80"}
	table, err := xdplb.MaglevRebuild(nil, nil, before, xdplb.RingSize)
	if err != nil {
		panic(err)
	}
	next, err := xdplb.MaglevRebuild(table, before, after, xdplb.RingSize)
	if err != nil {
		panic(err)
	}
	moved, movedFromSurvivors := 0, 0
	for slot := range table {
		if before[table[slot]] != after[next[slot]] {
			moved++
			if before[table[slot]] != "10.0.0.2:80" {
				movedFromSurvivors++
			}
		}
	}
	fmt.Printf("moved %.3f of the slots, %d from surviving backends\n", float64(moved)/xdplb.RingSize, movedFromSurvivors)
	// Output: moved 0.333 of the slots, 0 from surviving backends
}
