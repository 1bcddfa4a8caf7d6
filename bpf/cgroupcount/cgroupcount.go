// Package cgroupcount is the cgroup-skb-count program: cgroup_skb programs
// that count the packets and bytes (IP packet lengths) the sockets of a
// cgroup receive and send. They never drop anything.
package cgroupcount

import (
	_ "embed"

	"github.com/bpfleet/bpfleet/bpf/internal/counters"
)

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "cgroup-skb-count"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "cgroupcount_bpfel.o"
	// IngressProgram counts received packets (attach type cgroup_inet_ingress).
	IngressProgram = "cgroup_skb_ingress"
	// EgressProgram counts sent packets (attach type cgroup_inet_egress).
	EgressProgram = "cgroup_skb_egress"
	// TrafficMap is the per-CPU array of [Counter] indexed by [Direction].
	TrafficMap = "cgroup_traffic"
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

// Direction indexes TrafficMap.
type Direction uint32

const (
	// Ingress counts what the cgroup's sockets receive.
	Ingress Direction = 0
	// Egress counts what they send.
	Egress Direction = 1
)

// Counter is the value of TrafficMap on one CPU: the packets and the sum of their IP lengths.
type Counter = counters.Counter

// Sum adds up per-CPU counters.
func Sum(perCPU []Counter) Counter { return counters.Sum(perCPU) }
