package program

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
)

// This file holds the reconciler's decisions as pure functions: no client,
// no clock other than the time passed in. The reconciler gathers inputs,
// calls them, and writes what they return.

// NodeOutcome is where one node stands on one digest.
type NodeOutcome int

const (
	// NodePending: the node has not reported every program attached at the digest.
	NodePending NodeOutcome = iota
	// NodeAttached: every program of the spec is Attached at the digest.
	NodeAttached
	// NodeFailed: a program of the spec is Failed at the digest.
	NodeFailed
)

// NodeView is one selected node as the decisions see it.
type NodeView struct {
	// Name is the node name.
	Name string
	// State is the node's BpfNodeState, nil when the agent has not written one.
	State *v1alpha1.BpfNodeState
	// NotReady: the Node's Ready condition is False or Unknown (its kubelet
	// stopped reporting, or the node is down). What its BpfNodeState says
	// may no longer hold, so the node counts as pending.
	NotReady bool
}

// NodeNotReady tells whether a Node's Ready condition says it is not ready.
// A Node without the condition (just registered) is not held against it.
func NodeNotReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status != corev1.ConditionTrue
		}
	}
	return false
}

// outcomeOf tells where node stands with every program of programs at
// digest, for the BpfProgram uid, the first failure's "Reason: message",
// and whether that failure is the bundle's own (bundleFault): the agent
// refused the digest's bytes, for example an ELF program whose type differs
// from the signed manifest's. Every node would refuse the same bytes, so
// such a failure is the digest's, not the node's or its kernel's.
func outcomeOf(state *v1alpha1.BpfNodeState, uid types.UID, programs []string, digest string) (o NodeOutcome, why string, bundleFault bool) {
	if digest == "" || state == nil {
		return NodePending, "", false
	}
	attached := make(map[string]bool, len(programs))
	wanted := make(map[string]bool, len(programs))
	for _, name := range programs {
		wanted[name] = true
	}
	for _, e := range state.Status.Programs {
		if e.UID != uid || e.Digest != digest || !wanted[e.Program] {
			continue
		}
		switch e.State {
		case v1alpha1.PhaseFailed:
			return NodeFailed, failure(e), e.Reason == v1alpha1.ReasonBundleInvalid
		case v1alpha1.PhaseAttached:
			attached[e.Program] = true
		}
	}
	if len(attached) == len(wanted) {
		return NodeAttached, "", false
	}
	return NodePending, "", false
}

func failure(e v1alpha1.ProgramState) string {
	reason := cmp.Or(e.Reason, "Failed")
	msg := e.Message
	if len(msg) > 200 {
		msg = msg[len(msg)-200:]
	}
	if msg == "" {
		return e.Program + ": " + reason
	}
	return e.Program + ": " + reason + ": " + msg
}

// SummaryInput is what Summarize needs.
type SummaryInput struct {
	// Program is the BpfProgram, with the status.rollout decided this round.
	Program *v1alpha1.BpfProgram
	// Nodes are the selected nodes, each with its BpfNodeState if any.
	Nodes []NodeView
}

// Summary is the fleet view of one BpfProgram.
type Summary struct {
	// Counts go to status.nodes.
	Counts v1alpha1.NodeCounts
	// Kernels go to status.kernels, sorted by release.
	Kernels []v1alpha1.KernelCompatibility
	// Failures are "node: program: Reason: message", sorted by node, at most 20.
	Failures []string
}

// Summarize counts nodes attached, failed and pending at the digest each must
// run (rollout.DigestForNodeKernel, with the release the node reports), and
// groups them by kernel release. A node that is not Ready counts as pending,
// whatever it last reported. A release paused during the rollout keeps
// what was learned in its FirstFailure ("paused: node: program: Reason:
// message") even after its nodes rolled back to the stable digest.
func Summarize(in SummaryInput) Summary {
	p := in.Program
	programs := specPrograms(p)
	var s Summary
	kernels := map[string]*v1alpha1.KernelCompatibility{}
	nodes := slices.Clone(in.Nodes)
	slices.SortFunc(nodes, func(a, b NodeView) int { return strings.Compare(a.Name, b.Name) })
	for _, n := range nodes {
		s.Counts.Selected++
		outcome, why, _ := outcomeOf(n.State, p.UID, programs, rollout.DigestForNodeKernel(p, n.Name, releaseOf(n.State)))
		if n.NotReady {
			outcome = NodePending
		}
		var k *v1alpha1.KernelCompatibility
		if release := releaseOf(n.State); release != "" {
			if k = kernels[release]; k == nil {
				k = &v1alpha1.KernelCompatibility{Release: release}
				kernels[release] = k
			}
		}
		switch outcome {
		case NodeAttached:
			s.Counts.Attached++
			if k != nil {
				k.Attached++
			}
		case NodeFailed:
			s.Counts.Failed++
			if len(s.Failures) < 20 {
				s.Failures = append(s.Failures, n.Name+": "+why)
			}
			if k != nil {
				k.Failed++
				if k.FirstFailure == "" {
					k.FirstFailure = why
				}
			}
		default:
			s.Counts.Pending++
		}
	}
	s.Counts.Summary = fmt.Sprintf("%d/%d", s.Counts.Attached, s.Counts.Selected)
	for _, k := range kernels {
		if r := p.Status.Rollout; k.FirstFailure == "" && rollout.InProgress(r) {
			for _, pk := range r.PausedKernels {
				if pk.Release == k.Release {
					k.FirstFailure = "paused: " + pk.Node + ": " + pk.Reason
				}
			}
		}
		s.Kernels = append(s.Kernels, *k)
	}
	slices.SortFunc(s.Kernels, func(a, b v1alpha1.KernelCompatibility) int { return strings.Compare(a.Release, b.Release) })
	return s
}

// releaseOf is the kernel release a node state reports, "" without one.
func releaseOf(state *v1alpha1.BpfNodeState) string {
	if state == nil {
		return ""
	}
	return state.Status.Kernel.Release
}

func specPrograms(p *v1alpha1.BpfProgram) []string {
	names := make([]string, 0, len(p.Spec.Programs))
	for _, a := range p.Spec.Programs {
		names = append(names, a.Name)
	}
	return names
}

// Event is an Event the reconciler must emit.
type Event struct {
	// Type is corev1.EventTypeNormal or EventTypeWarning.
	Type string
	// Reason is a CamelCase word.
	Reason string
	// Message is for humans.
	Message string
}

// RolloutInput is what DecideRollout needs.
type RolloutInput struct {
	// Now is the current time, from the reconciler's injected clock.
	Now time.Time
	// Program is the BpfProgram with its current status.rollout.
	Program *v1alpha1.BpfProgram
	// Verified is the digest verified for the current generation, or ""
	// when the current spec's bundle was not (yet) admitted.
	Verified string
	// Paused tells whether the last decision paused after a completed wave
	// (the RolledOut condition's reason is RolloutPaused; WaveStartedAt
	// then holds when the pause ends), or already reported the last wave
	// done with kernel releases paused (reason KernelsPaused).
	Paused bool
	// Nodes are the selected nodes.
	Nodes []NodeView
}

// RolloutDecision is the next status.rollout and what to tell the world.
type RolloutDecision struct {
	// Rollout is the new status.rollout (nil while nothing was verified).
	Rollout *v1alpha1.RolloutStatus
	// RolledOut is the RolledOut condition (type, status, reason, message).
	RolledOut metav1.Condition
	// RequeueAfter is when to look again (a pause ending); zero for never.
	RequeueAfter time.Duration
	// Events to emit.
	Events []Event
}

// DecideRollout moves status.rollout one step: it starts a rollout when a new
// digest was verified, completes waves whose nodes all report the target
// attached, waits pauseSeconds between waves, and halts (rolling every node
// back to the stable digest) when more than maxFailedNodes nodes fail the
// target.
//
// Kernel compatibility is learned on the way. A node that fails the target
// on kernel release R pauses R (status.rollout.pausedKernels) when no node
// of R reports the target attached and some other release among the
// selected nodes is not paused: the failure is then taken as R's
// incompatibility with the target, not as a bad digest. (A fleet of one
// release, or a target failing on every release but the paused ones, is
// left to maxFailedNodes, exactly as without pauses.) Every node of a
// paused release keeps (or returns to) the stable digest, the nodes that
// failed included (rollout.DigestForNodeKernel), and is left out of the
// waves: not a member, not pending, and its failures do not count toward
// maxFailedNodes. Nodes of the other releases go on through the waves.
//
// Interaction with halting: the first paused release is free; every further
// paused release counts as one failed node toward maxFailedNodes, so a
// target that fails on several kernels halts as a bad digest would. What
// one node reports is bounded (its release is its own word): it pauses at
// most one release per rollout, and counts at most once toward
// maxFailedNodes, whatever releases or failures it reports. A
// failure on a release where some node attached the target, or on a node
// that reported no release, counts as before.
//
// When the last wave is done and releases are paused, the rollout does not
// complete: stableDigest stays what the paused releases run, RolledOut is
// False with reason KernelsPaused, and a new verified digest (a fix) starts
// a new rollout with no pauses.
func DecideRollout(in RolloutInput) RolloutDecision {
	p := in.Program
	spec := p.Spec.Rollout
	var d RolloutDecision
	cur := p.Status.Rollout
	var r *v1alpha1.RolloutStatus
	if cur != nil {
		r = cur.DeepCopy()
	}
	now := metav1.NewTime(in.Now)

	// A newly verified digest starts a rollout from what runs now.
	if in.Verified != "" && (r == nil || r.TargetDigest != in.Verified) {
		stable := ""
		if r != nil {
			switch {
			case r.HaltedReason != "":
				stable = r.StableDigest
			case r.TargetDigest == r.StableDigest:
				stable = r.TargetDigest
			default:
				// Superseded mid-rollout: nodes not yet moved run the stable digest.
				stable = r.StableDigest
			}
		}
		r = &v1alpha1.RolloutStatus{TargetDigest: in.Verified, StableDigest: stable, WaveStartedAt: &now}
		in.Paused = false
		if stable != in.Verified {
			from := "nothing"
			if stable != "" {
				from = v1alpha1.ShortDigest(stable)
			}
			d.Events = append(d.Events, Event{corev1.EventTypeNormal, "RolloutStarted",
				fmt.Sprintf("rolling out %s (from %s) with strategy %s", v1alpha1.ShortDigest(in.Verified), from, cmp.Or(spec.Strategy, v1alpha1.RolloutAllAtOnce))})
		}
	}
	d.Rollout = r
	if r == nil {
		d.RolledOut = cond(v1alpha1.ConditionRolledOut, false, v1alpha1.ReasonWaitingForBundle, "no verified bundle digest yet")
		return d
	}

	programs := specPrograms(p)
	waves := rollout.Waves(p)
	last := max(int32(len(waves))-1, 0)
	nodes := make([]nodeAt, 0, len(in.Nodes))
	for _, n := range in.Nodes {
		o, why, fault := outcomeOf(n.State, p.UID, programs, r.TargetDigest)
		nodes = append(nodes, nodeAt{n.Name, releaseOf(n.State), rollout.WaveOf(rollout.Bucket(n.Name, p.UID), waves), o, why, fault})
	}
	slices.SortFunc(nodes, func(a, b nodeAt) int { return strings.Compare(a.name, b.name) })
	r.UpdatedNodes = 0
	// runsTarget holds the releases on which some node attached the target;
	// releases, every release a selected node reports.
	runsTarget := map[string]bool{}
	var releases []string
	for _, n := range nodes {
		if n.outcome == NodeAttached {
			r.UpdatedNodes++
			runsTarget[n.release] = true
		}
		if n.release != "" && !slices.Contains(releases, n.release) {
			releases = append(releases, n.release)
		}
	}
	// othersLeft tells whether a release other than release is not paused:
	// pausing the last one would be a rollback of everything, which is what
	// maxFailedNodes decides.
	othersLeft := func(release string) bool {
		for _, other := range releases {
			if other != release && !rollout.Paused(r, other) {
				return true
			}
		}
		return false
	}

	switch {
	case r.HaltedReason != "":
		d.RolledOut = cond(v1alpha1.ConditionRolledOut, false, v1alpha1.ReasonRolledBack, r.HaltedReason)
		return d
	case r.TargetDigest == r.StableDigest:
		d.RolledOut = cond(v1alpha1.ConditionRolledOut, true, v1alpha1.ReasonRolloutComplete,
			fmt.Sprintf("every selected node was told to run %s", v1alpha1.ShortDigest(r.TargetDigest)))
		return d
	}

	for {
		// Failures among the nodes told to run the target. A failure on a
		// release no node runs the target on pauses that release; nodes of
		// paused releases are out of the waves.
		var failed []nodeAt
		done := true
		members := 0
		for _, n := range nodes {
			if n.wave > r.Wave {
				continue
			}
			if n.outcome == NodeFailed && !n.bundleFault && n.release != "" && !runsTarget[n.release] && !rollout.Paused(r, n.release) && othersLeft(n.release) && !pausedBy(r, n.name) {
				r.PausedKernels = append(r.PausedKernels, v1alpha1.PausedKernel{Release: n.release, Node: n.name, Reason: n.why})
				d.Events = append(d.Events, Event{corev1.EventTypeWarning, "KernelPaused",
					fmt.Sprintf("%s failed on kernel %s (%s: %s): nodes of that release keep %s, the others go on",
						v1alpha1.ShortDigest(r.TargetDigest), n.release, n.name, n.why, cmp.Or(v1alpha1.ShortDigest(r.StableDigest), "nothing"))})
			}
			if rollout.Paused(r, n.release) {
				continue
			}
			if n.wave == r.Wave {
				members++
			}
			switch n.outcome {
			case NodeFailed:
				failed = append(failed, n)
			case NodePending:
				done = false
			}
		}
		r.FailedNodes = nil
		for i, n := range failed {
			if i == 20 {
				break
			}
			r.FailedNodes = append(r.FailedNodes, n.name)
		}
		extraKernels := max(len(r.PausedKernels)-1, 0)
		// A bundle fault halts at the first report: every further node
		// would refuse the same bytes, so maxFailedNodes does not apply.
		bundleFault := slices.ContainsFunc(failed, func(n nodeAt) bool { return n.bundleFault })
		if bundleFault || int32(countedNodes(failed, r)) > spec.MaxFailedNodes {
			var b strings.Builder
			fmt.Fprintf(&b, "%d node(s) failed %s", len(failed), v1alpha1.ShortDigest(r.TargetDigest))
			if extraKernels > 0 {
				fmt.Fprintf(&b, " and it failed on %d kernel releases (%s)", len(r.PausedKernels), pausedReleases(r))
			}
			if bundleFault {
				fmt.Fprintf(&b, " (%s: the bundle's own fault, refused whatever maxFailedNodes), rolled back to ", v1alpha1.ReasonBundleInvalid)
			} else {
				fmt.Fprintf(&b, " (maxFailedNodes %d), rolled back to ", spec.MaxFailedNodes)
			}
			if r.StableDigest == "" {
				b.WriteString("nothing")
			} else {
				b.WriteString(v1alpha1.ShortDigest(r.StableDigest))
			}
			b.WriteString(":")
			if len(failed) == 0 {
				for _, k := range r.PausedKernels {
					fmt.Fprintf(&b, " %s on %s (%s);", k.Node, k.Release, k.Reason)
				}
			}
			for i, n := range failed {
				if i == 5 {
					fmt.Fprintf(&b, " and %d more", len(failed)-5)
					break
				}
				fmt.Fprintf(&b, " %s (%s);", n.name, n.why)
			}
			r.HaltedReason = strings.TrimSuffix(b.String(), ";")
			d.Events = append(d.Events,
				Event{corev1.EventTypeWarning, "RolloutHalted", fmt.Sprintf("wave %d of %s: %s", r.Wave, v1alpha1.ShortDigest(r.TargetDigest), r.HaltedReason)},
				Event{corev1.EventTypeWarning, v1alpha1.ReasonRolledBack, fmt.Sprintf("every node returns to %s", cmp.Or(v1alpha1.ShortDigest(r.StableDigest), "nothing"))})
			d.RolledOut = cond(v1alpha1.ConditionRolledOut, false, v1alpha1.ReasonRolledBack, r.HaltedReason)
			return d
		}
		if !done {
			msg := fmt.Sprintf("wave %d of %d: %d node(s) run %s", r.Wave+1, last+1, r.UpdatedNodes, v1alpha1.ShortDigest(r.TargetDigest))
			if len(r.PausedKernels) > 0 {
				msg += "; paused on kernel " + pausedReleases(r)
			}
			d.RolledOut = cond(v1alpha1.ConditionRolledOut, false, v1alpha1.ReasonRolloutInProgress, msg)
			return d
		}
		// The wave is complete.
		if !in.Paused {
			d.Events = append(d.Events, Event{corev1.EventTypeNormal, "WaveCompleted",
				fmt.Sprintf("wave %d of %d (%d node(s)) runs %s", r.Wave+1, last+1, members, v1alpha1.ShortDigest(r.TargetDigest))})
		}
		if r.Wave >= last && len(r.PausedKernels) > 0 {
			msg := fmt.Sprintf("every wave runs %s except kernel %s, which keeps %s", v1alpha1.ShortDigest(r.TargetDigest), pausedReleases(r), cmp.Or(v1alpha1.ShortDigest(r.StableDigest), "nothing"))
			if !in.Paused {
				d.Events = append(d.Events, Event{corev1.EventTypeWarning, v1alpha1.ReasonKernelsPaused, msg})
			}
			d.RolledOut = cond(v1alpha1.ConditionRolledOut, false, v1alpha1.ReasonKernelsPaused, msg)
			return d
		}
		if r.Wave >= last {
			r.StableDigest = r.TargetDigest
			r.FailedNodes = nil
			d.Events = append(d.Events, Event{corev1.EventTypeNormal, v1alpha1.ReasonRolloutComplete,
				fmt.Sprintf("every selected node was told to run %s", v1alpha1.ShortDigest(r.TargetDigest))})
			d.RolledOut = cond(v1alpha1.ConditionRolledOut, true, v1alpha1.ReasonRolloutComplete,
				fmt.Sprintf("every selected node was told to run %s", v1alpha1.ShortDigest(r.TargetDigest)))
			return d
		}
		pause := time.Duration(spec.PauseSeconds) * time.Second
		if pause > 0 && members > 0 {
			if !in.Paused {
				end := metav1.NewTime(in.Now.Add(pause))
				r.WaveStartedAt = &end
				in.Paused = true
			}
			if remaining := r.WaveStartedAt.Sub(in.Now); remaining > 0 {
				d.RequeueAfter = remaining
				d.RolledOut = cond(v1alpha1.ConditionRolledOut, false, v1alpha1.ReasonRolloutPaused,
					fmt.Sprintf("wave %d of %d complete, next wave in %s", r.Wave+1, last+1, remaining.Round(time.Second)))
				return d
			}
		}
		r.Wave++
		r.WaveStartedAt = &now
		in.Paused = false
	}
}

// nodeAt is one selected node as DecideRollout sees it on the target digest.
type nodeAt struct {
	name    string
	release string
	wave    int32
	outcome NodeOutcome
	why     string
	// bundleFault: the node refused the digest's bytes (outcomeOf).
	bundleFault bool
}

// pausedBy tells whether node's failure already paused a release of this
// rollout. One node pauses at most one release: the release it reports is
// its own word, so a node that changes it cannot pause release after
// release (each further one counting toward maxFailedNodes) and halt the
// rollout alone.
func pausedBy(r *v1alpha1.RolloutStatus, node string) bool {
	return slices.ContainsFunc(r.PausedKernels, func(k v1alpha1.PausedKernel) bool { return k.Node == node })
}

// countedNodes is what counts toward maxFailedNodes: the nodes that failed
// the target outside paused releases, and the nodes that paused a release
// after the first, each node once however many programs, releases or
// reports it fails with.
func countedNodes(failed []nodeAt, r *v1alpha1.RolloutStatus) int {
	nodes := map[string]bool{}
	for _, n := range failed {
		nodes[n.name] = true
	}
	for i, k := range r.PausedKernels {
		if i > 0 {
			nodes[k.Node] = true
		}
	}
	return len(nodes)
}

// pausedReleases lists status.rollout.pausedKernels' releases, comma separated.
func pausedReleases(r *v1alpha1.RolloutStatus) string {
	releases := make([]string, 0, len(r.PausedKernels))
	for _, k := range r.PausedKernels {
		releases = append(releases, k.Release)
	}
	return strings.Join(releases, ",")
}

func cond(t string, ok bool, reason, msg string) metav1.Condition {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg}
}

// ReadyInput is what DecideReady needs.
type ReadyInput struct {
	// Rollout is the status.rollout just decided.
	Rollout *v1alpha1.RolloutStatus
	// Refused is the BundleResolved or SignatureVerified condition that is
	// False for the current generation, nil when the bundle was admitted.
	Refused *metav1.Condition
	// Summary is the node summary.
	Summary Summary
}

// DecideReady returns the Ready and Degraded conditions. Ready is True only
// when the current spec's digest runs on every selected node.
func DecideReady(in ReadyInput) (ready, degraded metav1.Condition) {
	c := in.Summary.Counts
	switch {
	case in.Summary.Counts.Failed > 0:
		degraded = cond(v1alpha1.ConditionDegraded, true, v1alpha1.ReasonNodesFailed,
			fmt.Sprintf("%d of %d node(s) failed: %s", c.Failed, c.Selected, strings.Join(firstN(in.Summary.Failures, 5), "; ")))
	case in.Rollout != nil && in.Rollout.HaltedReason != "":
		degraded = cond(v1alpha1.ConditionDegraded, true, v1alpha1.ReasonRolloutHalted, in.Rollout.HaltedReason)
	case rollout.InProgress(in.Rollout) && len(in.Rollout.PausedKernels) > 0:
		degraded = cond(v1alpha1.ConditionDegraded, true, v1alpha1.ReasonKernelsPaused, pausedMessage(in.Rollout))
	default:
		degraded = cond(v1alpha1.ConditionDegraded, false, v1alpha1.ReasonNoFailures, "no selected node reports a failure")
	}
	switch {
	case in.Refused != nil:
		ready = cond(v1alpha1.ConditionReady, false, in.Refused.Reason, in.Refused.Message)
	case in.Rollout == nil || in.Rollout.TargetDigest == "":
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonWaitingForBundle, "no verified bundle digest yet")
	case in.Rollout.HaltedReason != "":
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonRolloutHalted, in.Rollout.HaltedReason)
	case c.Selected == 0:
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonNoNodesSelected, "the nodeSelector selects no node")
	case c.Failed > 0:
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonNodesFailed, degraded.Message)
	case rollout.InProgress(in.Rollout) && len(in.Rollout.PausedKernels) > 0:
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonKernelsPaused, pausedMessage(in.Rollout))
	case rollout.InProgress(in.Rollout):
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonRolloutInProgress,
			fmt.Sprintf("%d/%d node(s) run %s", in.Rollout.UpdatedNodes, c.Selected, v1alpha1.ShortDigest(in.Rollout.TargetDigest)))
	case c.Pending > 0:
		ready = cond(v1alpha1.ConditionReady, false, v1alpha1.ReasonNodesPending,
			fmt.Sprintf("%d of %d node(s) have not reported every program attached", c.Pending, c.Selected))
	default:
		ready = cond(v1alpha1.ConditionReady, true, v1alpha1.ReasonAllAttached,
			fmt.Sprintf("%d node(s) run %s", c.Selected, v1alpha1.ShortDigest(in.Rollout.TargetDigest)))
	}
	return ready, degraded
}

// pausedMessage says which releases keep the stable digest and why.
func pausedMessage(r *v1alpha1.RolloutStatus) string {
	parts := make([]string, 0, len(r.PausedKernels))
	for _, k := range r.PausedKernels {
		parts = append(parts, fmt.Sprintf("%s (%s: %s)", k.Release, k.Node, k.Reason))
	}
	return fmt.Sprintf("%s failed on kernel %s; nodes of those releases keep %s",
		v1alpha1.ShortDigest(r.TargetDigest), strings.Join(parts, ", "), cmp.Or(v1alpha1.ShortDigest(r.StableDigest), "nothing"))
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// AttachTypes lists the distinct attach kinds of the spec in order, comma
// separated, for status.attachTypes.
func AttachTypes(p *v1alpha1.BpfProgram) string {
	var kinds []string
	for _, a := range p.Spec.Programs {
		if k := hooks.Kind(a); k != "" && !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return strings.Join(kinds, ",")
}

// Compatible tells whether the manifest program p can be attached by the
// block a: exactly the program type (and, for tracing programs, the attach
// type) the hook takes, never a family (hooks.Fits). A cgroup block for the
// device hook takes cgroup_device programs only, not cgroup_skb.
func Compatible(a v1alpha1.ProgramAttachment, p *format.Program) bool {
	t, err := format.ParseProgramType(p.Type)
	if err != nil {
		return false
	}
	at := ebpf.AttachNone
	if p.AttachType != "" {
		if at, err = format.ParseAttachType(p.AttachType); err != nil {
			return false
		}
	}
	return hooks.Fits(a, t, at)
}

// ProgressOnly tells whether status after differs from before in progress
// only: node counts and their summary, kernel compatibility counts,
// rollout.updatedNodes and rollout.failedNodes, and the messages of
// conditions whose status, reason and observed generation stay. No agent
// reads any of these; what decides what a node runs (the digests, the wave
// and its start, a halt, paused kernels) and every condition transition is
// more than progress.
func ProgressOnly(before, after v1alpha1.BpfProgramStatus) bool {
	if equality.Semantic.DeepEqual(before, after) {
		return false
	}
	if len(before.Conditions) != len(after.Conditions) {
		return false
	}
	for _, c := range after.Conditions {
		old := meta.FindStatusCondition(before.Conditions, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason || old.ObservedGeneration != c.ObservedGeneration {
			return false
		}
	}
	strip := func(s v1alpha1.BpfProgramStatus) v1alpha1.BpfProgramStatus {
		s.Nodes, s.Kernels, s.Conditions = v1alpha1.NodeCounts{}, nil, nil
		if s.Rollout != nil {
			r := *s.Rollout
			r.UpdatedNodes, r.FailedNodes = 0, nil
			s.Rollout = &r
		}
		return s
	}
	return equality.Semantic.DeepEqual(strip(before), strip(after))
}
