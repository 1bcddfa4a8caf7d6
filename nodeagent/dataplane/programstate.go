package dataplane

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/nodeagent/internal/status"
)

// ProgramState is one row of what the dataplane reports: a program of a
// BpfProgram at one attach point, or one row for all its attach points in
// pods. The node agent's controller copies it into the node's status; the
// dataplane itself knows no API types.
type ProgramState struct {
	// BpfProgram is the BpfProgram's name.
	BpfProgram string
	// UID is the BpfProgram's uid.
	UID types.UID
	// Generation is the BpfProgram generation that last changed what the
	// entry runs (see Desired.RunsKey).
	Generation int64
	// Digest is the bundle digest loaded (or being loaded).
	Digest string
	// Program is the program's name in the bundle.
	Program string
	// AttachPoint says where it is attached (attach.Target.Point); KIND/pods
	// for the row of a program's attach points in pods.
	AttachPoint string
	// Pods sums the attach points in pods; nil for other rows.
	Pods *PodCounts
	// State is StatePending, StateAttached or StateFailed.
	State State
	// Reason is a CamelCase word for the state (one of the Reason*
	// constants, or a HoldError's reason).
	Reason string
	// Message explains; on a verifier rejection, the log's tail.
	Message string
	// Signer is Desired.Signer.
	Signer string
	// LinkID is the kernel's id of the link attaching the program.
	LinkID uint32
	// ProgramInfo is what bpftool shows of the loaded program.
	status.ProgramInfo
}

// State is where a row stands. The words are those of the API's
// ProgramPhase, so the controller copies them unchanged.
type State string

// The states the dataplane reports.
const (
	StatePending  State = "Pending"
	StateAttached State = "Attached"
	StateFailed   State = "Failed"
)

// PodCounts sums a program's attach points in pods by state.
type PodCounts struct {
	Attached, Failed, Pending int32
	// RecentFailures are up to MaxRecentPodFailures failed attach points,
	// "point: Reason: message".
	RecentFailures []string
}

// MaxRecentPodFailures bounds PodCounts.RecentFailures (the API allows as
// many).
const MaxRecentPodFailures = 5

// KernelInfo identifies the running kernel.
type KernelInfo struct {
	// Release is uname -r.
	Release string
	// Architecture is the Go architecture name (amd64, arm64).
	Architecture string
	// BTF tells whether the kernel exposes its BTF.
	BTF bool
	// BootID is /proc/sys/kernel/random/boot_id.
	BootID string
}
