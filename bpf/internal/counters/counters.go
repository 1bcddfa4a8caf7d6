// Package counters is the packets-and-bytes value the shipped programs'
// per-CPU counter maps hold (bpf/include/bpfleet_counters.h on the C
// side), shared by their typed map APIs.
package counters

// Counter is one CPU's value of a packets-and-bytes counter map.
type Counter struct {
	// Packets is the number of packets (frames) counted.
	Packets uint64
	// Bytes is the sum of their lengths.
	Bytes uint64
}

// Sum adds up per-CPU counters.
func Sum(perCPU []Counter) Counter {
	var total Counter
	for _, c := range perCPU {
		total.Packets += c.Packets
		total.Bytes += c.Bytes
	}
	return total
}
