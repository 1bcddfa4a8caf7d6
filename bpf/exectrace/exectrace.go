// Package exectrace is the exec-trace program: one ring-buffer event per
// successful exec, from the sched/sched_process_exec tracepoint.
package exectrace

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
)

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "exec-trace"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "exectrace_bpfel.o"
	// ProgramName is the tracepoint program (its C function name).
	ProgramName = "exec_trace"
	// TracepointGroup and TracepointName are where the program attaches.
	TracepointGroup = "sched"
	TracepointName  = "sched_process_exec"
	// EventsMap is the ring buffer of [Event] records.
	EventsMap = "exec_events"
	// StatsMap is the per-CPU array of uint64: [StatSent], [StatLost].
	StatsMap = "exec_stats"
)

// Indices of StatsMap.
const (
	// StatSent counts events written to the ring buffer.
	StatSent uint32 = 0
	// StatLost counts events lost because the ring buffer was full.
	StatLost uint32 = 1
)

const (
	commLen     = 16
	filenameLen = 256
	// EventSize is the size of one ring-buffer record.
	EventSize = 8 + 4*4 + commLen + filenameLen
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

// ErrShortEvent is returned for a record too short to be an Event.
var ErrShortEvent = errors.New("short exec event")

// Event is one exec.
type Event struct {
	// CgroupID is the cgroup v2 id of the process (the inode number of its
	// cgroup directory).
	CgroupID uint64
	// PID is the process (thread group) id.
	PID uint32
	// PPID is the real parent's process id.
	PPID uint32
	// UID and GID are the real user and group ids.
	UID, GID uint32
	// Comm is the command name after the exec (the file's base name,
	// truncated to 15 bytes).
	Comm string
	// Filename is the path the exec was given, truncated to 255 bytes.
	Filename string
}

// ParseEvent decodes a ring-buffer record.
func ParseEvent(raw []byte) (Event, error) {
	if len(raw) < EventSize {
		return Event{}, fmt.Errorf("%w: %d bytes, want %d", ErrShortEvent, len(raw), EventSize)
	}
	ne := binary.NativeEndian
	return Event{
		CgroupID: ne.Uint64(raw),
		PID:      ne.Uint32(raw[8:]),
		PPID:     ne.Uint32(raw[12:]),
		UID:      ne.Uint32(raw[16:]),
		GID:      ne.Uint32(raw[20:]),
		Comm:     cString(raw[24 : 24+commLen]),
		Filename: cString(raw[24+commLen : EventSize]),
	}, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
