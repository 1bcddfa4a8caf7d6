package v1alpha1

// Condition types of BpfProgram.
const (
	// ConditionBundleResolved: the bundle tag resolved to a digest and the
	// bundle's manifest holds every program the spec names.
	ConditionBundleResolved = "BundleResolved"
	// ConditionSignatureVerified: a BundleTrustPolicy admitted the digest.
	ConditionSignatureVerified = "SignatureVerified"
	// ConditionRolledOut: every selected node was told to run the resolved digest.
	ConditionRolledOut = "RolledOut"
	// ConditionReady: every selected node runs every program of the resolved digest.
	ConditionReady = "Ready"
	// ConditionDegraded: some selected nodes failed.
	ConditionDegraded = "Degraded"
	// ConditionAccepted (BpfPodProgram): the spec keeps to its namespace's
	// pods and the operator keeps a BpfProgram for it.
	ConditionAccepted = "Accepted"
	// ConditionProgramsFolded (BpfNodeState): more attach points than
	// MaxProgramRows; some are reported one row per program.
	ConditionProgramsFolded = "ProgramsFolded"
)

// Condition types of BundleTrustPolicy.
const (
	// ConditionUnsignedAllowed warns that the policy admits unsigned bundles.
	ConditionUnsignedAllowed = "UnsignedAllowed"
)

// Condition reasons. One reason names one cause, whichever condition carries it.
const (
	ReasonResolved            = "Resolved"
	ReasonResolveFailed       = "ResolveFailed"
	ReasonRegistryUnavailable = "RegistryUnavailable"
	ReasonBundleInvalid       = "BundleInvalid"
	ReasonProgramNotInBundle  = "ProgramNotInBundle"
	ReasonAttachMismatch      = "AttachTypeMismatch"
	ReasonVerified            = "Verified"
	ReasonUnsignedAllowed     = "UnsignedAllowed"
	ReasonUnsigned            = "Unsigned"
	ReasonSignatureMismatch   = "SignatureMismatch"
	ReasonNoTrustPolicy       = "NoTrustPolicy"
	ReasonProgramTypeDenied   = "ProgramTypeDenied"
	ReasonAttachTypeDenied    = "AttachTypeDenied"
	ReasonRolloutInProgress   = "RolloutInProgress"
	ReasonRolloutPaused       = "RolloutPaused"
	ReasonTooManyAttachPoints = "TooManyAttachPoints"
	ReasonRolloutComplete     = "RolloutComplete"
	ReasonRolloutHalted       = "RolloutHalted"
	ReasonRolledBack          = "RolledBack"
	ReasonAllAttached         = "AllAttached"
	ReasonNodesPending        = "NodesPending"
	ReasonNodesFailed         = "NodesFailed"
	ReasonNoNodesSelected     = "NoNodesSelected"
	ReasonNoFailures          = "NoFailures"
	ReasonWaitingForBundle    = "WaitingForBundle"
	ReasonKeysValid           = "KeysValid"
	ReasonKeyInvalid          = "KeyInvalid"
	// ReasonSecretForbidden: the operator may not (yet) read a key's
	// Secret. The bpfleet-trust-keys Role grants it only once the
	// trustkeys reconciler has seen the policy, so it is retried soon.
	ReasonSecretForbidden = "SecretForbidden"
	// ReasonKeyUnavailable: a trust key could not be read because of an
	// API error; the keys that could be read are used, and the read is
	// retried soon. Never a verdict on the bundle.
	ReasonKeyUnavailable = "KeyUnavailable"
)

// Reasons on BpfNodeState program entries (ProgramState.Reason).
const (
	ReasonWaitingForWave = "WaitingForWave"
	// ReasonWaitingForTarget: something of a BpfProgram runs on the node,
	// the program still exists, and it has no BpfProgramTarget (an operator
	// that writes none yet, as during an upgrade from a release before
	// targets): the node keeps what runs instead of detaching it.
	ReasonWaitingForTarget = "WaitingForTarget"
	ReasonPulling          = "Pulling"
	ReasonPullFailed       = "PullFailed"
	ReasonVerifyFailed     = "VerifyFailed"
	ReasonLoadFailed       = "LoadFailed"
	ReasonVerifierRejected = "VerifierRejected"
	ReasonNotSupported     = "NotSupported"
	ReasonAttachFailed     = "AttachFailed"
	ReasonNoInterface      = "NoMatchingInterface"
	ReasonAttached         = "Attached"
	ReasonTampered         = "Tampered"
	ReasonMapUpdateFailed  = "MapUpdateFailed"
	ReasonInvalidConstant  = "InvalidConstant"
	// ReasonMapIncompatible: the new digest (or reload) preserves a map
	// (bundle.yaml preserve: true) whose running map has another type, key
	// size, value size, max entries or flags; the message names the map
	// and what differs. The node keeps the old version attached with its
	// map, and counts as failed for the new digest.
	ReasonMapIncompatible = "MapIncompatible"
	// ReasonDigestNotPinned: spec.bundle.image pins a digest and
	// status.rollout names another for this node; the agent keeps what
	// runs and loads nothing else.
	ReasonDigestNotPinned = "DigestNotPinned"
	// ReasonInvalidNodeSelector: the program's nodeSelector cannot be
	// evaluated (it reached the API around validation, e.g. under an older
	// CRD). What runs on a node keeps running, held at its digest; the
	// BpfProgram is Degraded with this reason.
	ReasonInvalidNodeSelector = "InvalidNodeSelector"
	// ReasonBPFFSRemounted (an Event on the BpfNodeState): bpffs went away
	// under the running agent, which mounted it again and pinned again
	// what runs.
	ReasonBPFFSRemounted = "BPFFSRemounted"
	// ReasonTenancyViolation: a BpfPodProgram (or the BpfProgram kept for
	// it) names something outside its namespace's pods: a node interface,
	// path, cgroup or tracepoint, or another namespace. The operator keeps
	// no BpfProgram for it; an agent attaches nothing of it.
	ReasonTenancyViolation = "TenancyViolation"
	// ReasonNameTaken: the BpfProgram name NAMESPACE.NAME that a
	// BpfPodProgram needs belongs to a BpfProgram made for something else.
	ReasonNameTaken = "NameTaken"
	// ReasonNoPodsOnNode: a program that targets pods is loaded on the
	// node, and none of the pods it selects runs there now.
	ReasonNoPodsOnNode = "NoPodsOnNode"
	// ReasonAccepted: the operator keeps a BpfProgram for the BpfPodProgram.
	ReasonAccepted = "Accepted"
	// ReasonUnreadableRow: a stored status.programs row that its reader
	// could not decode (written in another shape, e.g. by an older agent);
	// its agent's next status write replaces it.
	ReasonUnreadableRow = "UnreadableRow"
)

// Finalizer and the reasons of deletion.
const (
	// FinalizerNodeCleanup holds a deleted BpfProgram until no BpfNodeState
	// reports it any more (every agent detached and unpinned it), or until
	// the nodes that still do are gone or the operator's cleanup timeout
	// passed.
	FinalizerNodeCleanup = "bpfleet.io/node-cleanup"
	// ReasonNodesNotCleaned (a Warning Event on a deleted BpfProgram): the
	// cleanup timeout passed while these nodes still reported it; the
	// finalizer was released and their agents remove it when they run
	// again (or bpfleet-agent --cleanup does).
	ReasonNodesNotCleaned = "NodesNotCleaned"
)
