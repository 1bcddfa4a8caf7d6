package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BpfProgramSpec declares which programs of which bundle run where.
// +kubebuilder:validation:XValidation:rule="!has(self.mapEntries) || self.mapEntries.all(e, self.mapEntries.filter(o, o.map == e.map && o.key == e.key).size() == 1)",message="mapEntries must not set the same map key twice"
type BpfProgramSpec struct {
	// Bundle is the signed OCI artifact that holds the eBPF objects.
	Bundle BundleSource `json:"bundle"`

	// Programs lists the programs of the bundle to load and where to attach
	// each. Each entry names one program and carries exactly one attach block.
	// The list may change after creation: added entries are attached, removed
	// ones detached, without touching the others.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	Programs ProgramAttachments `json:"programs"`

	// Constants are written into the programs' read-only data (.rodata
	// variables declared `volatile const` in C) before load, so the verifier
	// sees them as constants and prunes dead branches.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Constants []Constant `json:"constants,omitempty"`

	// MapEntries are written into the bundle's maps after load, and rewritten
	// whenever this list changes, without reloading any program: a new
	// packet-of-death rule takes effect at once. Entries are written in
	// their order; keys an edit drops from the list are removed only after
	// every listed entry is written (array slots are zeroed).
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	MapEntries []MapEntry `json:"mapEntries,omitempty"`

	// NodeSelector selects the nodes by label. Empty or absent selects every node.
	// Agents cannot evaluate a malformed selector, so the API server refuses
	// unknown operators, In/NotIn without values and Exists/DoesNotExist with
	// values. Malformed label keys and values are left to the agents (a
	// regular expression over metav1.LabelSelector's unbounded lists exceeds
	// the CEL cost budget): they keep what runs and report
	// InvalidNodeSelector.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || (has(e.values) && size(e.values) > 0))",message="matchExpressions with operator In or NotIn need values"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || size(e.values) == 0)",message="matchExpressions with operator Exists or DoesNotExist must not have values"
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// Rollout says how a new bundle digest reaches the selected nodes.
	// +optional
	// +kubebuilder:default={strategy: AllAtOnce}
	Rollout RolloutSpec `json:"rollout,omitempty"`

	// Events asks the agents to read the bundle's declared event outputs
	// (ring buffers) and write each record, decoded from its BTF type and
	// tagged with the node and the pod that caused it, as one JSON line on
	// their standard output.
	// +optional
	Events *EventsSpec `json:"events,omitempty"`

	// Tenant is set by the operator on the BpfProgram it keeps for a
	// BpfPodProgram: the programs then attach only to pods of the tenant's
	// namespace, agents refuse every node target, and only trust policies
	// whose namespaceSelector matches that namespace admit the bundle.
	// +optional
	Tenant *Tenant `json:"tenant,omitempty"`
}

// EventsSpec is what the agents read of a program's event outputs.
type EventsSpec struct {
	// Enabled turns reading on.
	Enabled bool `json:"enabled"`
	// RateLimit caps the events per second each node writes per output;
	// the rest are dropped and counted (bpfleet_events_dropped_total).
	// Zero means 1000.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	RateLimit int32 `json:"rateLimit,omitempty"`
	// Fields keeps only these top-level fields of each record; empty keeps
	// every field.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=set
	Fields []string `json:"fields,omitempty"`
}

// PullPolicy says when a tag is resolved again to a digest.
// +kubebuilder:validation:Enum=IfNotPresent;Always
type PullPolicy string

const (
	// PullIfNotPresent resolves a tag once; the fleet keeps that digest until
	// the spec changes or the re-resolve annotation is set.
	PullIfNotPresent PullPolicy = "IfNotPresent"
	// PullAlways resolves the tag on every resync; a moved tag starts a new
	// rollout.
	PullAlways PullPolicy = "Always"
)

// ResolveAnnotation asks the operator to resolve the bundle tag again once; the
// operator removes it when done.
const ResolveAnnotation = "bpfleet.io/resolve"

// BundleSource names a bundle in an OCI registry.
type BundleSource struct {
	// Image is the bundle reference: registry/repository:tag, or
	// registry/repository@sha256:<64 hex>. A tag is resolved by the operator
	// to one digest, and every node runs that digest.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`
	Image string `json:"image"`

	// PullPolicy says when a tag is resolved again: IfNotPresent (default)
	// keeps the first digest; Always follows a moving tag.
	// +optional
	// +kubebuilder:default=IfNotPresent
	PullPolicy PullPolicy `json:"pullPolicy,omitempty"`
}

// ProgramAttachment names one program of the bundle and where to attach it.
// Exactly one attach block must be set.
type ProgramAttachment struct {
	// Name is the program's name in the bundle (its C function name).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	Name string `json:"name"`

	// XDP attaches to network interfaces at the driver (native) or generic hook.
	// +optional
	XDP *XDPAttach `json:"xdp,omitempty"`
	// TC attaches to network interfaces with tcx (ingress or egress).
	// +optional
	TC *TCAttach `json:"tc,omitempty"`
	// Tracepoint attaches to a kernel tracepoint (tracefs group/name).
	// +optional
	Tracepoint *TracepointAttach `json:"tracepoint,omitempty"`
	// RawTracepoint attaches a raw_tp or tp_btf program to a tracepoint by name.
	// +optional
	RawTracepoint *RawTracepointAttach `json:"rawTracepoint,omitempty"`
	// Fentry attaches at the entry of a kernel function (BTF trampoline).
	// +optional
	Fentry *FunctionAttach `json:"fentry,omitempty"`
	// Fexit attaches at the return of a kernel function (BTF trampoline).
	// +optional
	Fexit *FunctionAttach `json:"fexit,omitempty"`
	// Kprobe attaches a kprobe or kretprobe to a kernel function.
	// +optional
	Kprobe *KprobeAttach `json:"kprobe,omitempty"`
	// Uprobe attaches a uprobe or uretprobe to a symbol of a user-space binary.
	// +optional
	Uprobe *UprobeAttach `json:"uprobe,omitempty"`
	// Cgroup attaches to a cgroup v2 hook.
	// +optional
	Cgroup *CgroupAttach `json:"cgroup,omitempty"`
	// SkLookup attaches an sk_lookup program to a network namespace: it
	// picks the socket that receives each new connection or datagram.
	// +optional
	SkLookup *SkLookupAttach `json:"skLookup,omitempty"`
	// Netfilter attaches a netfilter program to a netfilter hook of a
	// network namespace: it sees, and may drop, each packet passing it.
	// +optional
	Netfilter *NetfilterAttach `json:"netfilter,omitempty"`
}

// InterfaceSelector picks network interfaces on a node.
// +kubebuilder:validation:XValidation:rule="(has(self.names) && size(self.names) > 0) || (has(self.primary) && self.primary)",message="set names, or primary: true"
type InterfaceSelector struct {
	// Names are interface names or shell globs (eth*, veth?a, ens[0-9]).
	// Interfaces that appear later and match are attached within a second.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=15
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_.:@*?\[\]-]+$`
	// +kubebuilder:validation:XValidation:rule="self.all(n, n != '.' && n != '..')",message="interface names must not be . or .."
	Names []string `json:"names,omitempty"`

	// Primary selects the interface that holds the node's default route.
	// +optional
	Primary bool `json:"primary,omitempty"`
}

// XDPMode is the XDP hook: native (driver) or generic (skb).
// +kubebuilder:validation:Enum=native;generic
type XDPMode string

const (
	// XDPModeNative attaches in the driver; fastest, needs driver support.
	XDPModeNative XDPMode = "native"
	// XDPModeGeneric attaches after skb allocation; works on every interface.
	XDPModeGeneric XDPMode = "generic"
)

// XDPAttach attaches an XDP program to interfaces.
type XDPAttach struct {
	// Interfaces selects the interfaces to attach to: the node's, or with
	// pods set, those inside each selected pod's network namespace
	// (primary: the pod's default-route interface).
	Interfaces InterfaceSelector `json:"interfaces"`
	// Pods attaches inside the network namespace of each selected pod on
	// the node instead of the node's own.
	// +optional
	Pods *PodSelector `json:"pods,omitempty"`
	// Mode is native (default) or generic.
	// +optional
	// +kubebuilder:default=native
	Mode XDPMode `json:"mode,omitempty"`
}

// TCDirection is the traffic direction of a tcx hook.
// +kubebuilder:validation:Enum=ingress;egress
type TCDirection string

const (
	// TCIngress is the tcx ingress hook.
	TCIngress TCDirection = "ingress"
	// TCEgress is the tcx egress hook.
	TCEgress TCDirection = "egress"
)

// TCOrder places a tcx program among the others on the same hook.
// +kubebuilder:validation:Enum=First;Last
type TCOrder string

const (
	// TCOrderFirst runs before every program already attached.
	TCOrderFirst TCOrder = "First"
	// TCOrderLast runs after every program already attached.
	TCOrderLast TCOrder = "Last"
)

// TCAttach attaches a tcx program to interfaces.
type TCAttach struct {
	// Interfaces selects the interfaces to attach to: the node's, or with
	// pods set, those inside each selected pod's network namespace.
	Interfaces InterfaceSelector `json:"interfaces"`
	// Pods attaches inside the network namespace of each selected pod on
	// the node instead of the node's own.
	// +optional
	Pods *PodSelector `json:"pods,omitempty"`
	// Direction is ingress or egress.
	Direction TCDirection `json:"direction"`
	// Order places the program first or last (default) on the hook.
	// +optional
	// +kubebuilder:default=Last
	Order TCOrder `json:"order,omitempty"`
}

// TracepointAttach names a tracepoint as tracefs lists it (events/<group>/<name>).
type TracepointAttach struct {
	// Group is the tracepoint group, e.g. sched or syscalls.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_]+$`
	Group string `json:"group"`
	// Name is the tracepoint in the group, e.g. sched_process_exec.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_]+$`
	Name string `json:"name"`
	// Pods keeps the bundle's pod filter map (PodFilterMap) filled with the
	// cgroup ids of the selected pods' containers on the node, so programs
	// that consult it see only those pods' events, filtered in the kernel.
	// +optional
	Pods *PodSelector `json:"pods,omitempty"`
}

// RawTracepointAttach names a raw tracepoint.
type RawTracepointAttach struct {
	// Name is the tracepoint name, e.g. sched_switch.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_]+$`
	Name string `json:"name"`
	// Pods keeps the bundle's pod filter map filled, as for tracepoints.
	// +optional
	Pods *PodSelector `json:"pods,omitempty"`
}

// FunctionAttach names a kernel function for fentry/fexit.
type FunctionAttach struct {
	// Function is the kernel function, e.g. tcp_connect.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.]*$`
	Function string `json:"function"`
}

// KprobeAttach names a kernel function for a kprobe.
type KprobeAttach struct {
	// Function is the kernel function, e.g. tcp_connect.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.]*$`
	Function string `json:"function"`
	// Return attaches a kretprobe instead.
	// +optional
	Return bool `json:"return,omitempty"`
}

// UprobeAttach names a symbol in a user-space binary on the node, or in
// the root filesystem of selected containers.
// +kubebuilder:validation:XValidation:rule="has(self.symbol) || has(self.offset)",message="set symbol or offset"
// +kubebuilder:validation:XValidation:rule="!has(self.containers) || !has(self.pid)",message="pid and containers are exclusive"
type UprobeAttach struct {
	// Path is the absolute path of the binary or library on the node, or
	// with containers set, inside each selected container's root
	// filesystem.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(c, c == '..')",message="path must not contain .."
	Path string `json:"path"`
	// Symbol is the function symbol, e.g. readline.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Symbol string `json:"symbol,omitempty"`
	// Offset is added to the symbol's address (or is the address without a symbol).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Offset *int64 `json:"offset,omitempty"`
	// PID restricts the probe to one process.
	// +optional
	// +kubebuilder:validation:Minimum=1
	PID *int32 `json:"pid,omitempty"`
	// Return attaches a uretprobe instead.
	// +optional
	Return bool `json:"return,omitempty"`
	// Containers attaches once per selected container, to path as that
	// container sees it, and again when the container restarts.
	// +optional
	Containers *ContainerSelector `json:"containers,omitempty"`
}

// CgroupAttachType is a cgroup v2 hook.
// +kubebuilder:validation:Enum=ingress;egress;sock_create;connect4;connect6;sendmsg4;sendmsg6;recvmsg4;recvmsg6;sock_ops;device;sysctl;getsockopt;setsockopt
type CgroupAttachType string

// CgroupAttach names a cgroup v2 directory, or pods, and a hook.
// +kubebuilder:validation:XValidation:rule="has(self.path) != has(self.pods)",message="set exactly one of path and pods"
type CgroupAttach struct {
	// Path is the cgroup directory on the node, absolute (e.g.
	// /sys/fs/cgroup/kubepods.slice), or relative to the cgroup v2 mount.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(c, c == '..')",message="path must not contain .."
	Path string `json:"path,omitempty"`
	// Pods attaches to the cgroup of each selected pod on the node.
	// +optional
	Pods *PodSelector `json:"pods,omitempty"`
	// AttachType is the hook, e.g. ingress or egress for cgroup_skb programs.
	AttachType CgroupAttachType `json:"attachType"`
}

// SkLookupAttach names the network namespace an sk_lookup program runs in.
type SkLookupAttach struct {
	// NetNS is the path of a network namespace file on the node (e.g.
	// /var/run/netns/blue or /proc/1234/ns/net); empty is the node's own
	// network namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(c, c == '..')",message="path must not contain .."
	NetNS string `json:"netns,omitempty"`
}

// NetfilterAttach names a netfilter hook of a network namespace (Linux 6.4).
type NetfilterAttach struct {
	// Family is the protocol family: ipv4 or ipv6.
	// +kubebuilder:validation:Enum=ipv4;ipv6
	Family string `json:"family"`
	// Hook is the netfilter hook: prerouting, input, forward, output or
	// postrouting.
	// +kubebuilder:validation:Enum=prerouting;input;forward;output;postrouting
	Hook string `json:"hook"`
	// Priority orders the programs and netfilter tables of the hook, lower
	// first (iptables' filter table is 0).
	// +optional
	// +kubebuilder:validation:Minimum=-2147483647
	// +kubebuilder:validation:Maximum=2147483646
	Priority int32 `json:"priority,omitempty"`
	// NetNS is the path of a network namespace file on the node (e.g.
	// /var/run/netns/blue or /proc/1234/ns/net); empty is the node's own
	// network namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(c, c == '..')",message="path must not contain .."
	NetNS string `json:"netns,omitempty"`
}

// Constant sets a `volatile const` variable of the programs before load.
type Constant struct {
	// Name is the variable's name in .rodata. Names starting with bpfleet_
	// are the agent's (the pod filter).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('bpfleet_')",message="names starting with bpfleet_ are reserved for the agent"
	Name string `json:"name"`
	// Value is the variable's value: an integer (decimal or 0x hex), true or
	// false, or 0x-prefixed hex bytes for arrays; it must fit the variable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Value string `json:"value"`
}

// MapEncoding says how a map key or value is written.
// +kubebuilder:validation:Enum=Hex;Base64
type MapEncoding string

const (
	// MapEncodingHex is lower or upper case hex, two digits a byte.
	MapEncodingHex MapEncoding = "Hex"
	// MapEncodingBase64 is standard base64 with padding.
	MapEncodingBase64 MapEncoding = "Base64"
)

// MapEntry is one key/value pair written into a map of the bundle.
// +kubebuilder:validation:XValidation:rule="self.encoding == 'Base64' ? (self.key.matches('^[A-Za-z0-9+/]+={0,2}$') && self.value.matches('^[A-Za-z0-9+/]+={0,2}$')) : (self.key.matches('^([0-9a-fA-F]{2})+$') && self.value.matches('^([0-9a-fA-F]{2})+$'))",message="key and value must be encoded as encoding says (Hex: pairs of hex digits; Base64: standard base64)"
type MapEntry struct {
	// Map is the map's name in the bundle. Maps whose names start with
	// bpfleet_ are the agent's (the pod filter).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('bpfleet_')",message="names starting with bpfleet_ are reserved for the agent"
	Map string `json:"map"`
	// Key is the key's bytes in the map's key layout (host byte order).
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=256
	Key string `json:"key"`
	// Value is the value's bytes in the map's value layout (host byte order).
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value"`
	// Encoding of key and value: Hex (default) or Base64.
	// +optional
	// +kubebuilder:default=Hex
	Encoding MapEncoding `json:"encoding,omitempty"`
}

// RolloutStrategy says how nodes move to a new digest.
// +kubebuilder:validation:Enum=AllAtOnce;Waves
type RolloutStrategy string

const (
	// RolloutAllAtOnce moves every selected node at once.
	RolloutAllAtOnce RolloutStrategy = "AllAtOnce"
	// RolloutWaves moves nodes in waves of growing size.
	RolloutWaves RolloutStrategy = "Waves"
)

// RolloutSpec says how a new digest reaches the fleet.
// +kubebuilder:validation:XValidation:rule="self.strategy != 'Waves' || (has(self.waves) && size(self.waves) > 0)",message="strategy Waves needs waves"
type RolloutSpec struct {
	// Strategy is AllAtOnce (default) or Waves.
	// +optional
	// +kubebuilder:default=AllAtOnce
	Strategy RolloutStrategy `json:"strategy,omitempty"`

	// Waves are cumulative percentages of the selected nodes, strictly
	// increasing and ending at 100, e.g. [1, 10, 50, 100]. A node's wave is
	// fixed by a stable hash of its name and the program's uid.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=set
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self.isSorted() && self[size(self) - 1] == 100",message="waves must increase and end at 100"
	Waves []int32 `json:"waves,omitempty"`

	// PauseSeconds is the wait after a wave completes before the next begins.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	PauseSeconds int32 `json:"pauseSeconds,omitempty"`

	// MaxFailedNodes is how many nodes may fail the new digest before the
	// rollout halts and the nodes that took it roll back. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxFailedNodes int32 `json:"maxFailedNodes,omitempty"`
}

// NodeCounts sums the per-node state of one BpfProgram.
type NodeCounts struct {
	// Selected is how many nodes the nodeSelector selects.
	// +optional
	Selected int32 `json:"selected,omitempty"`
	// Attached is how many selected nodes run every program of the current digest.
	// +optional
	Attached int32 `json:"attached,omitempty"`
	// Failed is how many selected nodes report a failure.
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// Pending is how many selected nodes have not reported the current digest yet.
	// +optional
	Pending int32 `json:"pending,omitempty"`
	// Summary is "attached/selected", for printing.
	// +optional
	Summary string `json:"summary,omitempty"`
}

// RolloutStatus tracks the move from one digest to another.
type RolloutStatus struct {
	// TargetDigest is the digest being rolled out.
	// +optional
	TargetDigest string `json:"targetDigest,omitempty"`
	// StableDigest is the digest the fleet ran before; nodes outside the
	// current waves keep running it, and a halted rollout returns to it.
	// +optional
	StableDigest string `json:"stableDigest,omitempty"`
	// Wave is the index into spec.rollout.waves of the wave in progress.
	// Nodes in waves 0..Wave run TargetDigest.
	// +optional
	Wave int32 `json:"wave,omitempty"`
	// WaveStartedAt is when the current wave began (or its pause ended).
	// +optional
	WaveStartedAt *metav1.Time `json:"waveStartedAt,omitempty"`
	// UpdatedNodes is how many nodes report TargetDigest attached.
	// +optional
	UpdatedNodes int32 `json:"updatedNodes,omitempty"`
	// HaltedReason says why the rollout stopped; empty while it runs.
	// +optional
	HaltedReason string `json:"haltedReason,omitempty"`
	// FailedNodes names up to 20 nodes that failed the target digest.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	FailedNodes []string `json:"failedNodes,omitempty"`
	// PausedKernels are the kernel releases on which the target digest
	// failed during this rollout. Nodes of a paused release run
	// StableDigest while the other releases continue through the waves;
	// a new target digest clears the list.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=release
	PausedKernels []PausedKernel `json:"pausedKernels,omitempty"`
}

// ReasonKernelsPaused is the RolledOut, Ready and Degraded reason of a
// rollout whose waves are done on every kernel release but the paused ones,
// whose nodes keep the stable digest until a new digest is rolled out.
const ReasonKernelsPaused = "KernelsPaused"

// PausedKernel is a kernel release on which the rollout's target digest
// failed, learned from the first node of that release that reported the
// failure.
type PausedKernel struct {
	// Release is the kernel release (uname -r).
	Release string `json:"release"`
	// Node is the node whose failure paused the release.
	// +optional
	Node string `json:"node,omitempty"`
	// Reason is that node's failure, "program: Reason: message".
	// +optional
	Reason string `json:"reason,omitempty"`
}

// KernelCompatibility sums the nodes of one kernel release.
type KernelCompatibility struct {
	// Release is the kernel release (uname -r).
	Release string `json:"release"`
	// Attached is how many nodes of this release run the program.
	// +optional
	Attached int32 `json:"attached,omitempty"`
	// Failed is how many nodes of this release failed.
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// FirstFailure is the first failure reason seen on this release.
	// +optional
	FirstFailure string `json:"firstFailure,omitempty"`
}

// BpfProgramStatus is the fleet-wide view the operator writes.
type BpfProgramStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ResolvedDigest is the digest the bundle tag resolved to.
	// +optional
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	ResolvedDigest string `json:"resolvedDigest,omitempty"`
	// ShortDigest is the first 12 hex digits of ResolvedDigest, for printing.
	// +optional
	ShortDigest string `json:"shortDigest,omitempty"`
	// ResolvedImage is the image as it was resolved (registry/repository).
	// +optional
	ResolvedImage string `json:"resolvedImage,omitempty"`
	// Signer names the trust policy and key that admitted the bundle.
	// +optional
	Signer string `json:"signer,omitempty"`
	// AttachTypes lists the attach kinds of spec.programs, for printing.
	// +optional
	AttachTypes string `json:"attachTypes,omitempty"`
	// Conditions: BundleResolved, SignatureVerified, RolledOut, Ready, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Nodes sums the per-node state.
	// +optional
	Nodes NodeCounts `json:"nodes,omitempty"`
	// Rollout tracks the digest rollout.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// Kernels sums nodes by kernel release.
	// +optional
	// +listType=map
	// +listMapKey=release
	Kernels []KernelCompatibility `json:"kernels,omitempty"`
}

// BpfProgram declares eBPF programs from a signed bundle and where they run.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bpfp,categories=bpfleet
// +kubebuilder:printcolumn:name="Types",type=string,JSONPath=`.status.attachTypes`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.bundle.image`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.shortDigest`
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodes.summary`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Signer",type=string,JSONPath=`.status.signer`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
type BpfProgram struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what should run where.
	Spec BpfProgramSpec `json:"spec"`
	// Status is what runs, as the operator sums it.
	// +optional
	Status BpfProgramStatus `json:"status,omitempty"`
}

// BpfProgramList is a list of BpfPrograms.
// +kubebuilder:object:root=true
type BpfProgramList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BpfProgram `json:"items"`
}
