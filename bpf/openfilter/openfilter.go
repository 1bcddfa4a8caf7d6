// Package openfilter is the open-filter program: it watches openat(2) through
// the syscalls/sys_enter_openat tracepoint, filters in the kernel and sends
// only the matching calls to user space.
//
// A call matches when its path starts with one of the prefixes of
// [PrefixesMap] (the longest wins; its id indexes [HitsMap]), and, with
// [MatchCommConstant] set, the caller's command name is in [CommsMap], and,
// with [CgroupIDConstant] not 0, the caller runs in that cgroup. With
// [SendAllConstant] set the program sends every call unfiltered, so that
// in-kernel and user-space filtering can be compared.
package openfilter

import (
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/bpfleet/bpfleet/bpf/internal/record"
)

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "open-filter"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "openfilter_bpfel.o"
	// ProgramName is the tracepoint program (its C function name).
	ProgramName = "open_filter"
	// TracepointGroup and TracepointName are where the program attaches.
	TracepointGroup = "syscalls"
	TracepointName  = "sys_enter_openat"
	// PrefixesMap is the LPM trie of path prefixes: key [PrefixKey], value
	// the prefix id (uint32, below MaxPrefixes).
	PrefixesMap = "path_prefixes"
	// CommsMap is the hash of command names: key [CommKey], value one byte.
	CommsMap = "comms"
	// HitsMap is the per-CPU array of uint64 match counts per prefix id.
	HitsMap = "prefix_hits"
	// StatsMap is the per-CPU array of uint64: StatSeen, StatSent, StatLost.
	StatsMap = "open_stats"
	// EventsMap is the ring buffer of [Event] records.
	EventsMap = "open_events"
	// SendAllConstant (bool) sends every call to user space, unfiltered.
	SendAllConstant = "send_all"
	// MatchCommConstant (bool) also requires the caller's comm in CommsMap.
	MatchCommConstant = "match_comm"
	// CgroupIDConstant (uint64), when not 0, also requires the caller's
	// cgroup v2 id to be this one.
	CgroupIDConstant = "cgroup_id"
)

// Indices of StatsMap.
const (
	// StatSeen counts openat calls seen.
	StatSeen uint32 = 0
	// StatSent counts records sent to user space.
	StatSent uint32 = 1
	// StatLost counts records lost because the ring buffer was full.
	StatLost uint32 = 2
)

// Limits of the program's maps.
const (
	// MaxPrefixes is the number of prefixes (and prefix ids).
	MaxPrefixes = 64
	// MaxPrefixLen is the longest prefix in bytes.
	MaxPrefixLen = 63
	// PrefixKeySize is the size of a PrefixesMap key.
	PrefixKeySize = 4 + 64
	commLen       = 16
	pathLen       = 256
	// EventSize is the size of one ring-buffer record.
	EventSize = 8 + 4*4 + commLen + pathLen
	// SentUnfiltered is Event.PrefixID when SendAllConstant skipped matching.
	SentUnfiltered = ^uint32(0)
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

// Errors of the encoders and the decoder.
var (
	ErrInvalidPrefix = errors.New("invalid path prefix")
	ErrInvalidComm   = errors.New("invalid command name")
	ErrShortEvent    = errors.New("short open event")
)

// PrefixKey encodes a path prefix as a PrefixesMap key (prefix length in
// bits, host order, then the bytes, zero padded).
func PrefixKey(prefix string) ([]byte, error) {
	if prefix == "" || len(prefix) > MaxPrefixLen || strings.IndexByte(prefix, 0) >= 0 {
		return nil, fmt.Errorf("%w: %q (1 to %d bytes, no NUL)", ErrInvalidPrefix, prefix, MaxPrefixLen)
	}
	k := make([]byte, PrefixKeySize)
	binary.NativeEndian.PutUint32(k, uint32(len(prefix))*8)
	copy(k[4:], prefix)
	return k, nil
}

// PrefixValue encodes a prefix id as a PrefixesMap value.
func PrefixValue(id uint32) ([]byte, error) {
	if id >= MaxPrefixes {
		return nil, fmt.Errorf("%w: id %d, at most %d", ErrInvalidPrefix, id, MaxPrefixes-1)
	}
	return binary.NativeEndian.AppendUint32(nil, id), nil
}

// PrefixMapEntry returns the hex key and value of a BpfProgram
// spec.mapEntries item that adds prefix with id to PrefixesMap.
func PrefixMapEntry(prefix string, id uint32) (key, value string, err error) {
	k, err := PrefixKey(prefix)
	if err != nil {
		return "", "", err
	}
	v, err := PrefixValue(id)
	if err != nil {
		return "", "", err
	}
	return hex.EncodeToString(k), hex.EncodeToString(v), nil
}

// CommKey encodes a command name as a CommsMap key (16 bytes, NUL padded).
func CommKey(comm string) ([]byte, error) {
	if comm == "" || len(comm) >= commLen || strings.IndexByte(comm, 0) >= 0 {
		return nil, fmt.Errorf("%w: %q (1 to %d bytes, no NUL)", ErrInvalidComm, comm, commLen-1)
	}
	k := make([]byte, commLen)
	copy(k, comm)
	return k, nil
}

// Event is one openat call sent to user space.
type Event struct {
	// CgroupID is the caller's cgroup v2 id.
	CgroupID uint64
	// PID is the caller's process id.
	PID uint32
	// PrefixID is the id of the matching prefix, or SentUnfiltered.
	PrefixID uint32
	// Flags are the openat flags.
	Flags int32
	// Comm is the caller's command name.
	Comm string
	// Path is the path argument, truncated to 255 bytes.
	Path string
}

// ParseEvent decodes a ring-buffer record.
func ParseEvent(raw []byte) (Event, error) {
	r, err := record.New(raw, EventSize, ErrShortEvent)
	if err != nil {
		return Event{}, err
	}
	// In the order of struct open_event (Go evaluates them left to right);
	// 4 bytes of padding align comm.
	ev := Event{CgroupID: r.Uint64(), PID: r.Uint32(), PrefixID: r.Uint32(), Flags: int32(r.Uint32())}
	r.Pad(4)
	ev.Comm, ev.Path = r.String(commLen), r.String(pathLen)
	return ev, nil
}
