// Package xdplb is the xdp-lb program: an L4 load-balancer datapath (IPv4
// and IPv6, TCP and UDP) in XDP.
//
// A frame to a service (VIP address, port, protocol: [VIPsMap]) picks a
// backend from the service's Maglev ring ([RingsMap], computed in Go by
// [MaglevTable] or [MaglevRebuild]) by a hash of its 5-tuple, gets its
// destination rewritten to the backend (stateless DNAT with incremental IPv4
// header and TCP/UDP checksum updates) and is passed to the kernel, which
// routes it to the backend. Replies from a backend ([RealsMap]) get their
// source rewritten back to the VIP. With [ForwardActionConstant] set to
// XDP_TX, rewritten frames go back out of the interface they came in on,
// to the router that sent them (a one-arm load balancer). The program runs in XDP, not tcx: the
// rewrite needs no socket buffer, and the kernel's routing after XDP_PASS
// delivers to backends in other namespaces or hosts without a redirect map.
//
// Attach the program on the interfaces facing clients and on those facing
// backends. Per-backend counters are in [StatsMap]. A service and its
// backends share one address family.
package xdplb

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/bpfleet/bpfleet/bpf/internal/counters"
)

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "xdp-lb"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "xdplb_bpfel.o"
	// ProgramName is the XDP program (its C function name).
	ProgramName = "xdp_lb"
	// VIPsMap is the hash of services: key [VIPKey], value [VIPValue].
	VIPsMap = "vips"
	// RingsMap is the array of Maglev rings: key ring*RingSize+slot (uint32),
	// value a backend id (uint32).
	RingsMap = "rings"
	// BackendsMap is the array of backends: key backend id, value [BackendValue].
	BackendsMap = "backends"
	// RealsMap is the hash of backend endpoints for the return path: key
	// [RealKey], value [RealValue].
	RealsMap = "reals"
	// StatsMap is the per-CPU array of [Counter], one per backend id.
	StatsMap = "backend_stats"
	// HashSeedConstant is the volatile const seeding the flow hash.
	HashSeedConstant = "hash_seed"
	// ForwardActionConstant is the volatile const saying what a rewritten
	// frame gets: XDP_PASS (2, the default: the kernel routes it) or
	// XDP_TX (3: a one-arm load balancer sends it back out of the
	// interface it came in on, Ethernet addresses swapped, to the router
	// that sent it).
	ForwardActionConstant = "forward_action"
)

// Limits of the program's maps.
const (
	// MaxVIPs is the number of services (and rings).
	MaxVIPs = 16
	// RingSize is the number of slots of each Maglev ring (a prime).
	RingSize = 65537
	// MaxBackends is the number of backend ids; id 0 is never valid.
	MaxBackends = 1024
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

// Protocol is a transport protocol number.
type Protocol uint8

const (
	// ProtocolTCP is TCP.
	ProtocolTCP Protocol = 6
	// ProtocolUDP is UDP.
	ProtocolUDP Protocol = 17
)

// ErrInvalidService is returned for a service the datapath cannot serve.
var ErrInvalidService = errors.New("invalid service")

// Service is a load-balanced endpoint.
type Service struct {
	// VIP is the virtual address and port (IPv4 or IPv6).
	VIP netip.AddrPort
	// Protocol is ProtocolTCP or ProtocolUDP.
	Protocol Protocol
}

// Backend is a real server behind a service.
type Backend struct {
	// ID is the backend's slot in BackendsMap and StatsMap (1..MaxBackends-1).
	ID uint32
	// Addr is the address and port frames are rewritten to, of the
	// service's family.
	Addr netip.AddrPort
}

// family returns 4 or 6 for an address the datapath can serve.
func family(ap netip.AddrPort) (byte, error) {
	a := ap.Addr()
	switch {
	case a.Is4():
		return 4, nil
	case a.Is6() && !a.Is4In6() && a.Zone() == "":
		return 6, nil
	}
	return 0, fmt.Errorf("%w: address %s", ErrInvalidService, ap)
}

// endpoint is the 20-byte layout of vip_key, real_key, backend and
// real_info: address (16 bytes, IPv4 in the first 4, network order), port
// (network order), then two bytes.
func endpoint(ap netip.AddrPort, b18, b19 byte) ([]byte, error) {
	if _, err := family(ap); err != nil {
		return nil, err
	}
	b := make([]byte, 20)
	if a := ap.Addr(); a.Is4() {
		a4 := a.As4()
		copy(b, a4[:])
	} else {
		a16 := a.As16()
		copy(b, a16[:])
	}
	binary.BigEndian.PutUint16(b[16:], ap.Port())
	b[18], b[19] = b18, b19
	return b, nil
}

func checkProtocol(p Protocol) error {
	if p != ProtocolTCP && p != ProtocolUDP {
		return fmt.Errorf("%w: protocol %d", ErrInvalidService, p)
	}
	return nil
}

// VIPKey encodes a service as a key of VIPsMap.
func VIPKey(s Service) ([]byte, error) {
	if err := checkProtocol(s.Protocol); err != nil {
		return nil, err
	}
	fam, err := family(s.VIP)
	if err != nil {
		return nil, err
	}
	return endpoint(s.VIP, byte(s.Protocol), fam)
}

// VIPValue encodes the ring index of a service as a value of VIPsMap.
func VIPValue(ring uint32) ([]byte, error) {
	if ring >= MaxVIPs {
		return nil, fmt.Errorf("%w: ring %d, at most %d", ErrInvalidService, ring, MaxVIPs-1)
	}
	return binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, ring), 0), nil
}

// BackendValue encodes a backend as a value of BackendsMap (marked valid).
func BackendValue(b Backend) ([]byte, error) {
	if b.ID == 0 || b.ID >= MaxBackends {
		return nil, fmt.Errorf("%w: backend id %d not in 1..%d", ErrInvalidService, b.ID, MaxBackends-1)
	}
	fam, err := family(b.Addr)
	if err != nil {
		return nil, err
	}
	return endpoint(b.Addr, fam, 1) // BACKEND_VALID
}

// RealKey encodes a backend endpoint as a key of RealsMap.
func RealKey(b Backend, p Protocol) ([]byte, error) {
	if err := checkProtocol(p); err != nil {
		return nil, err
	}
	fam, err := family(b.Addr)
	if err != nil {
		return nil, err
	}
	return endpoint(b.Addr, byte(p), fam)
}

// RealValue encodes the VIP a backend answers for as a value of RealsMap.
func RealValue(s Service) ([]byte, error) {
	return endpoint(s.VIP, 0, 0)
}

// Counter is the value of StatsMap on one CPU: the frames sent to the backend and the sum of their lengths.
type Counter = counters.Counter

// Sum adds up per-CPU counters.
func Sum(perCPU []Counter) Counter { return counters.Sum(perCPU) }

// BackendNames names backends for the Maglev table by their address, so
// that the table depends on where backends are, not on their ids.
func BackendNames(backends []Backend) []string {
	out := make([]string, len(backends))
	for i, b := range backends {
		out[i] = b.Addr.String()
	}
	return out
}
