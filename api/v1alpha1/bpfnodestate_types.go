package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ProgramPhase is where one program stands on one node.
// +kubebuilder:validation:Enum=Pending;Loading;Attached;Failed;Detaching
type ProgramPhase string

const (
	// PhasePending: selected, not loaded yet (waiting for its wave, a pull, an interface).
	PhasePending ProgramPhase = "Pending"
	// PhaseLoading: being pulled, verified, loaded or attached.
	PhaseLoading ProgramPhase = "Loading"
	// PhaseAttached: loaded, attached and pinned.
	PhaseAttached ProgramPhase = "Attached"
	// PhaseFailed: could not load or attach; Reason and Message say why.
	PhaseFailed ProgramPhase = "Failed"
	// PhaseDetaching: being detached and unpinned.
	PhaseDetaching ProgramPhase = "Detaching"
)

// KernelInfo identifies the running kernel of a node.
type KernelInfo struct {
	// Release is uname -r.
	Release string `json:"release"`
	// Architecture is the Go architecture name (amd64, arm64).
	// +optional
	Architecture string `json:"architecture,omitempty"`
	// BTF tells whether the kernel exposes its BTF (needed for CO-RE).
	// +optional
	BTF bool `json:"btf,omitempty"`
	// BootID is /proc/sys/kernel/random/boot_id; a new one means pins are gone.
	// +optional
	BootID string `json:"bootID,omitempty"`
}

// Feature is one probed kernel capability.
type Feature struct {
	// Name is a program type (program/xdp), attach type (link/tcx) or helper.
	Name string `json:"name"`
	// Supported tells whether this kernel has it.
	Supported bool `json:"supported"`
}

// MaxRecentPodFailures bounds PodAttachCounts.RecentFailures.
const MaxRecentPodFailures = 5

// PodAttachCounts sums one program's attach points in pods on a node.
type PodAttachCounts struct {
	// Attached, Failed and Pending count the attach points (a pod's
	// interface, cgroup or container) by state.
	// +optional
	Attached int32 `json:"attached,omitempty"`
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// +optional
	Pending int32 `json:"pending,omitempty"`
	// RecentFailures are up to MaxRecentPodFailures failed attach points,
	// "point: Reason: message".
	// +optional
	// +kubebuilder:validation:MaxItems=5
	// +listType=atomic
	RecentFailures []string `json:"recentFailures,omitempty"`
}

// ProgramState is one program of one BpfProgram at one attach point on this
// node, with the fields bpftool prog show prints. BpfNodeStateStatus stores
// it compactly (BundleEntry and ProgramRow); these names are what Go code
// and kubectl bpf status -o json show.
type ProgramState struct {
	// BpfProgram is the BpfProgram's name.
	BpfProgram string `json:"bpfProgram"`
	// UID is the BpfProgram's uid.
	UID types.UID `json:"uid"`
	// Generation is the BpfProgram generation that last changed what this
	// entry runs: its digest, programs and attach blocks, constants or map
	// entries. A generation that changes none of them here (a new image
	// whose rollout wave has not reached this node, a new node selector)
	// leaves it, so that such an edit costs the node no status write.
	// +optional
	Generation int64 `json:"generation,omitempty"`
	// Digest is the bundle digest loaded (or being loaded).
	// +optional
	Digest string `json:"digest,omitempty"`
	// Program is the program's name in the bundle.
	Program string `json:"program"`
	// AttachPoint says where it is attached: xdp/eth0, tcx-ingress/eth0,
	// tracepoint/sched/sched_process_exec, uprobe//usr/bin/bash:readline, cgroup/egress:/sys/fs/cgroup.
	// A program that targets pods has one row for all of them, KIND/pods
	// (xdp/pods, cgroup/pods, uprobe/pods), summed in Pods.
	// +optional
	AttachPoint string `json:"attachPoint,omitempty"`
	// Pods sums the attach points of a program that targets pods, so the
	// node's status stays one row per program however many pods it runs in.
	// +optional
	Pods *PodAttachCounts `json:"pods,omitempty"`
	// State is Pending, Loading, Attached, Failed or Detaching.
	State ProgramPhase `json:"state"`
	// Reason is a CamelCase word for the state, e.g. VerifierRejected.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message is a human explanation; on a verifier rejection, the log's tail.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message,omitempty"`
	// Signer is the key fingerprint and trust policy that admitted the bundle.
	// +optional
	Signer string `json:"signer,omitempty"`
	// VerifiedAt is when the agent last verified the bundle's signature.
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`

	// ID is the kernel's program id.
	// +optional
	ID uint32 `json:"id,omitempty"`
	// Tag is the program tag (hash of its instructions), hex.
	// +optional
	Tag string `json:"tag,omitempty"`
	// Type is the program type, e.g. xdp, tracepoint.
	// +optional
	Type string `json:"type,omitempty"`
	// Name is the kernel's (truncated) program name.
	// +optional
	Name string `json:"name,omitempty"`
	// LoadedAt is when the kernel loaded the program.
	// +optional
	LoadedAt *metav1.Time `json:"loadedAt,omitempty"`
	// BytesXlated is the size of the translated program.
	// +optional
	BytesXlated uint32 `json:"bytesXlated,omitempty"`
	// BytesJited is the size of the JIT-compiled program.
	// +optional
	BytesJited uint32 `json:"bytesJited,omitempty"`
	// BytesMemlock is the memory the program accounts for.
	// +optional
	BytesMemlock uint64 `json:"bytesMemlock,omitempty"`
	// VerifiedInsns is how many instructions the verifier processed.
	// +optional
	VerifiedInsns uint32 `json:"verifiedInsns,omitempty"`
	// MapIDs are the ids of the maps the program uses.
	// +optional
	// +listType=atomic
	MapIDs []uint32 `json:"mapIDs,omitempty"`
	// BTFID is the id of the program's BTF.
	// +optional
	BTFID uint32 `json:"btfID,omitempty"`
	// LinkID is the id of the link that attaches the program.
	// +optional
	LinkID uint32 `json:"linkID,omitempty"`
	// RunCount is how many times the program ran (needs run-time stats on).
	// +optional
	RunCount uint64 `json:"runCount,omitempty"`
	// RunTimeNs is the total run time in nanoseconds (needs run-time stats on).
	// +optional
	RunTimeNs uint64 `json:"runTimeNs,omitempty"`
	// NsPerRun is RunTimeNs / RunCount.
	// +optional
	NsPerRun uint64 `json:"nsPerRun,omitempty"`
}

// UnmanagedProgram is an eBPF program on the node that bpfleet did not load.
type UnmanagedProgram struct {
	// ID is the kernel's program id.
	ID uint32 `json:"id"`
	// Type is the program type.
	Type string `json:"type"`
	// Name is the kernel's program name.
	// +optional
	Name string `json:"name,omitempty"`
	// Tag is the program tag, hex.
	// +optional
	Tag string `json:"tag,omitempty"`
	// LoadedAt is when it was loaded.
	// +optional
	LoadedAt *metav1.Time `json:"loadedAt,omitempty"`
	// AttachPoint lists, comma separated, where the links holding it attach
	// (xdp/ifindex:3, cgroup/inet_ingress:id 42, kprobe/do_unlinkat); empty
	// when it is attached without a link or not at all.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	AttachPoint string `json:"attachPoint,omitempty"`
	// Owners lists, comma separated, the processes holding a file
	// descriptor to the program or to a link of it when the agent first saw
	// it, as bpftool shows them: comm(pid), at most 8. Empty when none does
	// (it lives on through pins or links alone).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Owners string `json:"owners,omitempty"`
}

// UnmanagedSummary bounds what a node reports about programs it did not load.
type UnmanagedSummary struct {
	// Count is the number of unmanaged programs.
	// +optional
	Count int32 `json:"count,omitempty"`
	// ByType counts them by program type.
	// +optional
	ByType map[string]int32 `json:"byType,omitempty"`
	// Programs lists up to 20 of them.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	Programs []UnmanagedProgram `json:"programs,omitempty"`
}

// NodeSummary counts a node's program entries, for printing.
type NodeSummary struct {
	// Programs is the number of program entries.
	// +optional
	Programs int32 `json:"programs,omitempty"`
	// Attached is how many are Attached.
	// +optional
	Attached int32 `json:"attached,omitempty"`
	// Failed is how many are Failed.
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// FoldedAttachPoints is how many per-attach-point rows were folded into
	// per-program rows to keep status.programs within MaxProgramRows; zero
	// when every attach point has its own row. The condition
	// ProgramsFolded says the same.
	// +optional
	FoldedAttachPoints int32 `json:"foldedAttachPoints,omitempty"`
	// DroppedRows is how many per-program rows were left out because even
	// one row per program exceeded MaxProgramRows; zero normally.
	// +optional
	DroppedRows int32 `json:"droppedRows,omitempty"`
}

// MaxProgramRows bounds status.programs of a BpfNodeState: with rows of
// at most a few KiB it keeps the object far below etcd's 1.5 MiB request
// limit, however many interfaces a glob matches.
const MaxProgramRows = 256

// BpfNodeStateStatus is what one node's agent reports.
type BpfNodeStateStatus struct {
	// Kernel identifies the running kernel.
	// +optional
	Kernel KernelInfo `json:"kernel,omitempty"`
	// Features lists probed kernel capabilities.
	// +optional
	// +listType=map
	// +listMapKey=name
	Features []Feature `json:"features,omitempty"`
	// Bundles holds, once each, what rows of status.programs share: the
	// bundle (digest, signer, verification time) and the kernel's facts
	// about one of its programs. Stored form of Programs, written by
	// MarshalJSON; Go code reads Programs.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Bundles []BundleEntry `json:"bundles,omitempty"`
	// Rows are the stored form of Programs, one per program and attach
	// point (ProgramRow.Row says its fields), written by MarshalJSON; Go
	// code reads Programs.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Rows []ProgramRow `json:"programs,omitempty"`
	// Programs lists every managed program and attach point on the node, one
	// row per attach point. Beyond MaxProgramRows rows (a glob such as
	// veth* on a busy node), the attach points of each program fold into
	// one row per program (its attachPoint says how many and which range)
	// and summary.foldedAttachPoints counts what was folded. It is stored
	// as Bundles and Rows (noderows.go): decoding a status fills it, and
	// encoding one writes it.
	Programs []ProgramState `json:"-"`
	// Summary counts Programs, for printing.
	// +optional
	Summary NodeSummary `json:"summary,omitempty"`
	// StatsAt is when the run-time statistics in Programs (runCount,
	// runTimeNs) were read, so that readers compute rates over the agent's
	// sampling interval rather than their own. Unset when statistics are off.
	// +optional
	StatsAt *metav1.MicroTime `json:"statsAt,omitempty"`
	// Unmanaged summarises programs bpfleet did not load.
	// +optional
	Unmanaged *UnmanagedSummary `json:"unmanaged,omitempty"`
	// AgentVersion is the version of the agent that wrote this status.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// Conditions: Ready (the agent runs and reconciled).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BpfNodeState is one node's report of the eBPF programs it runs. Its name is
// the node's name; only that node's agent writes it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bpfns,categories=bpfleet
// +kubebuilder:printcolumn:name="Kernel",type=string,JSONPath=`.status.kernel.release`
// +kubebuilder:printcolumn:name="Programs",type=integer,JSONPath=`.status.summary.programs`
// +kubebuilder:printcolumn:name="Attached",type=integer,JSONPath=`.status.summary.attached`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.summary.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BpfNodeState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status is the node's report.
	// +optional
	Status BpfNodeStateStatus `json:"status,omitempty"`
}

// BpfNodeStateList is a list of BpfNodeStates.
// +kubebuilder:object:root=true
type BpfNodeStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BpfNodeState `json:"items"`
}
