// Package exectrace is the exec-trace program: one ring-buffer event per
// successful exec, from the sched/sched_process_exec tracepoint.
package exectrace

import (
	_ "embed"
	"errors"

	"github.com/bpfleet/bpfleet/bpf/internal/record"
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
	r, err := record.New(raw, EventSize, ErrShortEvent)
	if err != nil {
		return Event{}, err
	}
	// In the order of struct exec_event (Go evaluates them left to right).
	return Event{CgroupID: r.Uint64(), PID: r.Uint32(), PPID: r.Uint32(), UID: r.Uint32(), GID: r.Uint32(),
		Comm: r.String(commLen), Filename: r.String(filenameLen)}, nil
}
