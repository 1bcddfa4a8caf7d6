// Package netfilter is the nf-count program: a netfilter program, attached
// to one netfilter hook of a network namespace, that counts the packets
// passing the hook and, with DropConstant set, drops them.
package netfilter

import _ "embed"

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "nf-count"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "netfilter_bpfel.o"
	// Program is the netfilter program.
	Program = "nf_count"
	// DropConstant (__u8) drops every packet at the hook when not 0.
	DropConstant = "drop"
	// CountsMap is the array of uint64 counters indexed by Counter.
	CountsMap = "packet_counts"
)

// Counter indexes CountsMap.
type Counter uint32

const (
	// Packets counts every packet the program saw.
	Packets Counter = 0
	// Dropped counts the packets it dropped.
	Dropped Counter = 1
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

// Object is the ELF object (ObjectFile).
//
//go:embed netfilter_bpfel.o
var Object []byte
