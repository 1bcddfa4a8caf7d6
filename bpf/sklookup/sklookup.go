// Package sklookup is the sk-lookup-steer program: an sk_lookup program,
// attached to a network namespace, that counts socket lookups and steers
// new connections and datagrams for one local port (SteerPortConstant) to
// the socket in SteerMap, as if that socket listened on the port too.
package sklookup

import _ "embed"

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "sk-lookup-steer"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "sklookup_bpfel.o"
	// Program is the sk_lookup program.
	Program = "sk_lookup_steer"
	// SteerPortConstant is the local port steered (host byte order, __u16);
	// 0 steers nothing.
	SteerPortConstant = "steer_port"
	// SteerMap is the sockmap whose entry 0 is the socket steered to.
	SteerMap = "steer_target"
	// CountsMap is the array of uint64 counters indexed by Counter.
	CountsMap = "lookup_counts"
)

// Counter indexes CountsMap.
type Counter uint32

const (
	// Lookups counts every lookup the program saw.
	Lookups Counter = 0
	// Steered counts the lookups steered to the socket in SteerMap.
	Steered Counter = 1
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

// Object is the ELF object (ObjectFile).
//
//go:embed sklookup_bpfel.o
var Object []byte
