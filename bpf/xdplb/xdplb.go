// Package xdplb is the xdp-lb program: an L4 load-balancer datapath (IPv4,
// TCP and UDP) in XDP.
//
// A frame to a service (VIP address, port, protocol: [VIPsMap]) picks a
// backend from the service's Maglev ring ([RingsMap], computed in Go by
// [MaglevTable] or [MaglevRebuild]) by a hash of its 5-tuple, gets its
// destination rewritten to the backend (stateless DNAT with incremental IPv4
// header and TCP/UDP checksum updates) and is passed to the kernel, which
// routes it to the backend. Replies from a backend ([RealsMap]) get their
// source rewritten back to the VIP. The program runs in XDP, not tcx: the
// rewrite needs no socket buffer, and the kernel's routing after XDP_PASS
// delivers to backends in other namespaces or hosts without a redirect map.
//
// Attach the program on the interfaces facing clients and on those facing
// backends. Per-backend counters are in [StatsMap].
package xdplb

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
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
	// VIP is the virtual address and port (IPv4).
	VIP netip.AddrPort
	// Protocol is ProtocolTCP or ProtocolUDP.
	Protocol Protocol
}

// Backend is a real server behind a service.
type Backend struct {
	// ID is the backend's slot in BackendsMap and StatsMap (1..MaxBackends-1).
	ID uint32
	// Addr is the address and port frames are rewritten to (IPv4).
	Addr netip.AddrPort
}

func ipv4(ap netip.AddrPort) ([4]byte, error) {
	if !ap.Addr().Is4() {
		return [4]byte{}, fmt.Errorf("%w: %s is not IPv4", ErrInvalidService, ap)
	}
	return ap.Addr().As4(), nil
}

// addrPortKey is the 8-byte layout shared by vip_key, real_key and the
// backend/real values: address (network order), port (network order), then
// two more bytes.
func addrPortKey(ap netip.AddrPort, b6, b7 byte) ([]byte, error) {
	a, err := ipv4(ap)
	if err != nil {
		return nil, err
	}
	b := append(a[:], 0, 0, b6, b7)
	binary.BigEndian.PutUint16(b[4:], ap.Port())
	return b, nil
}

// VIPKey encodes a service as a key of VIPsMap.
func VIPKey(s Service) ([]byte, error) {
	if s.Protocol != ProtocolTCP && s.Protocol != ProtocolUDP {
		return nil, fmt.Errorf("%w: protocol %d", ErrInvalidService, s.Protocol)
	}
	return addrPortKey(s.VIP, byte(s.Protocol), 0)
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
	v, err := addrPortKey(b.Addr, 0, 0)
	if err != nil {
		return nil, err
	}
	binary.NativeEndian.PutUint16(v[6:], 1) // BACKEND_VALID
	return v, nil
}

// RealKey encodes a backend endpoint as a key of RealsMap.
func RealKey(b Backend, p Protocol) ([]byte, error) {
	return addrPortKey(b.Addr, byte(p), 0)
}

// RealValue encodes the VIP a backend answers for as a value of RealsMap.
func RealValue(s Service) ([]byte, error) {
	return addrPortKey(s.VIP, 0, 0)
}

// Counter is the value of StatsMap on one CPU.
type Counter struct {
	// Packets is the number of frames sent to the backend.
	Packets uint64
	// Bytes is the sum of their frame lengths.
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

// BackendNames names backends for the Maglev table by their address, so
// that the table depends on where backends are, not on their ids.
func BackendNames(backends []Backend) []string {
	out := make([]string, len(backends))
	for i, b := range backends {
		out[i] = b.Addr.String()
	}
	return out
}
