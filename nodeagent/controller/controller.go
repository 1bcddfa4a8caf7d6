// Package controller is the node agent's reconciler: it watches the node's own
// Node, its own BpfNodeState, every BpfProgramTarget (what it needs of each
// BpfProgram, targets.go) and every BundleTrustPolicy,
// computes the node's full desired set, pulls and verifies bundles again (the
// agent trusts no status field alone), hands the set to the dataplane and
// reports what runs in the node's BpfNodeState, writing only on change.
//
// There are no finalizers: a deleted or deselected BpfProgram is simply
// absent from the desired set, and the dataplane detaches what is absent.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/internal/failpoint"
	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
	"github.com/bpfleet/bpfleet/nodeagent/internal/pods"
	"github.com/bpfleet/bpfleet/nodeagent/metrics"
)

// Secrets: no marker. The agent reads only the trust-policy key Secrets the
// Role bpfleet-trust-keys names (config/rbac/common, kept by the operator).
// +kubebuilder:rbac:groups=bpfleet.io,resources=bundletrustpolicies,verbs=get;list;watch
//
// BpfNodeStates: the agent creates its own and then writes only its status
// (report), so it holds create and the status subresource, not update or
// patch of the object itself; an admission policy
// (config/rbac/common/agent_own_node_policy.yaml) confines every write to
// the object named after its node.
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfnodestates,verbs=get;list;watch;create
//
// Namespaces: their labels, for the namespaceSelector of trust policies
// (which admit BpfPodPrograms' bundles) and of pod targets. Read-only.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfnodestates/status,verbs=get;update;patch
//
// Nodes and Pods: the agent's informers read its own Node (metadata.name
// field selector) and its node's Pods (spec.nodeName field selector). A
// field-selected list or watch is still list and watch to RBAC, which
// cannot bind a grant to a selector or to a per-node name in one
// ClusterRole; admission policies never see reads. Read-only, and no
// verb that changes a Node or a Pod.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
//
// Events: about its own BpfNodeState only, which the API server keeps in
// the `default` namespace (Events about cluster-scoped objects live there);
// RBAC cannot name the regarding object, so
// config/rbac/common/agent_events_policy.yaml refuses any other Event
// from the agent.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Dataplane is the kernel side the reconciler drives; Kernel (a real
// *dataplane.Dataplane) satisfies it.
type Dataplane interface {
	Apply(ctx context.Context, desired []Desired) []v1alpha1.ProgramState
	Snapshot() []v1alpha1.ProgramState
	Changes() <-chan struct{}
	Kernel() v1alpha1.KernelInfo
	Features() []v1alpha1.Feature
}

// Bundles gets verified-by-digest bundles into the node cache; *cache.Cache
// satisfies it.
type Bundles interface {
	Get(ctx context.Context, repository, digest string) (*format.Bundle, error)
}

// Reconciler keeps one node's programs as the cluster declares them. It holds
// dependencies only; every request starts from the API objects.
type Reconciler struct {
	// Client reads from the manager's node-scoped cache and writes the
	// BpfNodeState.
	Client client.Client
	// NodeName is the node this agent runs on.
	NodeName string
	// Dataplane loads, attaches and reports programs.
	Dataplane Dataplane
	// Bundles pulls bundles by digest into the node cache.
	Bundles Bundles
	// Verifier checks signatures against the trust policies, remembering
	// recent successes.
	Verifier *VerifyMemo
	// Recorder emits events on program state transitions; nil emits none.
	Recorder events.EventRecorder
	// Version is the agent version written to status.
	Version string
	// RetryInterval is how soon a reconcile held by an unreachable registry
	// is retried; zero means 5s.
	RetryInterval time.Duration
	// Inventory summarises the programs bpfleet did not load into
	// status.unmanaged; nil reports none (simulated kernels).
	Inventory Inventory
	// UnmanagedLimiter bounds how often a changed inventory is written; nil
	// writes every change.
	UnmanagedLimiter *inventory.Limiter
	// Written remembers the last status write, so that a cache lagging it
	// causes no second, identical write; nil compares with the cache alone.
	Written *WrittenStatus
	// Pods finds pods' cgroups and network namespaces on this node; nil
	// attaches pod targets nowhere (simulated nodes).
	Pods *pods.Finder
	// Triggers say what else than API changes makes the node reconcile;
	// SetupWithManager registers them.
	Triggers Triggers
	// Metrics records the agent's phases, failures and status writes; nil
	// records nothing.
	Metrics *metrics.Agent
	// Programs reads a BpfProgram past the cache when something of it runs
	// here and it has no target (programsWithoutTarget); nil: a program
	// without a target is gone.
	Programs client.Reader
}

// phaseTimes is how long one reconcile spent in each phase, for the log line
// of a reconcile that changed the status.
type phaseTimes struct {
	verify, pull, apply, status time.Duration
}

// statsRefreshNamespace marks the periodic stats refresh request: the same
// node key in a namespace that no cluster-scoped object uses, so a request
// itself says whether run-time statistics may be written.
const statsRefreshNamespace = "bpfleet-stats-refresh"

// Reconcile brings the node to its desired set and reports it.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Name != r.NodeName {
		return ctrl.Result{}, nil
	}
	logger := log.FromContext(ctx)
	withStats := req.Namespace == statsRefreshNamespace

	node := &corev1.Node{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: r.NodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			// Without its Node the agent cannot tell which programs select
			// it; what runs keeps running until the Node is back.
			logger.Info("node not found; keeping what runs", "node", r.NodeName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get node %s: %w", r.NodeName, err)
	}
	programs, err := listPrograms(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("list BpfProgramTargets: %w", err)
	}
	var policies v1alpha1.BundleTrustPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return ctrl.Result{}, fmt.Errorf("list BundleTrustPolicies: %w", err)
	}
	snapshot := r.Dataplane.Snapshot()
	untargeted, err := r.programsWithoutTarget(ctx, programs, snapshot)
	if err != nil {
		return ctrl.Result{}, err
	}
	var took phaseTimes
	pl := r.plan(ctx, node, programs, untargeted, policies.Items, snapshot, time.Now(), &took)
	if pl.selErr != nil {
		logger.Error(pl.selErr, "some nodeSelectors cannot be evaluated; keeping what runs of them")
	}
	desired, verified, settle := pl.desired, pl.verified, pl.settle
	if wait := r.resolvePods(ctx, desired, time.Now()); wait > 0 && (settle == 0 || wait < settle) {
		settle = wait
	}

	start := time.Now()
	states := r.Dataplane.Apply(ctx, desired)
	took.apply = time.Since(start)
	r.Metrics.ObservePhase(metrics.PhaseApply, took.apply)
	states = explainHolds(states, desired)
	r.reportRemounts(ctx)

	start = time.Now()
	changed, err := r.report(ctx, node, states, verified, withStats)
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		took.status = time.Since(start)
		logger.Info("reported a changed status", "programs", len(states),
			"verify", took.verify, "pull", took.pull, "apply", took.apply, "status", took.status)
		r.collectGarbage(ctx, programs, states)
	}
	for _, d := range desired {
		if d.Hold != nil && transientHold(d.Hold) {
			return ctrl.Result{RequeueAfter: r.retryInterval()}, nil
		}
	}
	if wait, ok := r.unmanagedPending(); ok && (settle == 0 || wait < settle) {
		settle = wait + time.Millisecond
	}
	return ctrl.Result{RequeueAfter: settle}, nil
}

// plan is the node's desired set, as plan computes it.
type plan struct {
	// desired has one entry per program that selects the node.
	desired []Desired
	// verified tells, per admitted digest, when it was verified.
	verified map[types.UID]time.Time
	// settle is when to look again for programs held back by
	// awaitAdmission; 0 when none is.
	settle time.Duration
	// selErr names the programs whose nodeSelector could not be evaluated
	// (they are left out).
	selErr error
}

// plan computes the node's desired set from the API objects and what runs
// (snapshot): the programs that select node, less those awaitAdmission holds
// back at now, each with its verified bundle or a Hold saying why it cannot
// move; untargeted (programsWithoutTarget) are held as they run. It touches
// no kernel: Reconcile hands the result to the dataplane.
func (r *Reconciler) plan(ctx context.Context, node *corev1.Node, programs, untargeted []v1alpha1.BpfProgram, policies []v1alpha1.BundleTrustPolicy,
	snapshot []v1alpha1.ProgramState, now time.Time, took *phaseTimes) plan {
	var pl plan
	sel, held, selErr := selected(programs, node, onNode(snapshot))
	pl.selErr = selErr
	for i := range untargeted {
		p := &untargeted[i]
		if held == nil {
			held = map[types.UID]error{}
		}
		held[p.UID] = fmt.Errorf("BpfProgram %s: %w", p.Name, errWaitingForTarget)
		sel = append(sel, p)
	}
	sel, pl.settle = awaitAdmission(sel, snapshot, r.digestFor, now)
	pl.desired, pl.verified = r.desired(ctx, sel, held, policies, running(snapshot), took)
	return pl
}

// admissionGrace is how long after a BpfProgram's creation the agent waits
// for the operator's digest before it reports the program as waiting for
// one. The operator admits a new program within a second or two; a node that
// reported it at once would write its status twice (waiting, then
// attached), and at 1,000 nodes that first burst of writes is answered with
// 429s by API Priority and Fairness.
const admissionGrace = 3 * time.Second

// awaitAdmission leaves out of sel the programs created less than
// admissionGrace before now that have no digest for this node yet (digestFor)
// and of which nothing is on the node, and returns how long until the first of
// them is due (0 when none is held back). Any other program is kept: what
// runs, or was reported, is never dropped by this.
func awaitAdmission(sel []*v1alpha1.BpfProgram, snapshot []v1alpha1.ProgramState, digestFor func(*v1alpha1.BpfProgram) string, now time.Time) ([]*v1alpha1.BpfProgram, time.Duration) {
	known := map[types.UID]bool{}
	for _, s := range snapshot {
		known[s.UID] = true
	}
	var settle time.Duration
	kept := sel[:0:0]
	for _, p := range sel {
		left := p.CreationTimestamp.Add(admissionGrace).Sub(now)
		if left > 0 && !known[p.UID] && digestFor(p) == "" {
			left = min(left, admissionGrace) // a node clock behind the apiserver's waits no longer
			if settle == 0 || left < settle {
				settle = left
			}
			continue
		}
		kept = append(kept, p)
	}
	return kept, settle
}

func (r *Reconciler) retryInterval() time.Duration {
	if r.RetryInterval > 0 {
		return r.RetryInterval
	}
	return 5 * time.Second
}

// onNode tells whether the dataplane reports anything of a BpfProgram.
func onNode(snapshot []v1alpha1.ProgramState) func(types.UID) bool {
	known := map[types.UID]bool{}
	for _, s := range snapshot {
		known[s.UID] = true
	}
	return func(uid types.UID) bool { return known[uid] }
}

// desired builds the node's full desired set: one entry per selected
// program, with a verified bundle, or a Hold saying why it cannot move to
// its digest now (held gives the programs held before any pull). It also
// returns when each admitted digest was verified.
func (r *Reconciler) desired(ctx context.Context, sel []*v1alpha1.BpfProgram, held map[types.UID]error, policies []v1alpha1.BundleTrustPolicy, running map[types.UID]v1alpha1.ProgramState, took *phaseTimes) ([]Desired, map[types.UID]time.Time) {
	logger := log.FromContext(ctx)
	out := make([]Desired, 0, len(sel))
	verified := map[types.UID]time.Time{}
	for _, p := range sel {
		d := Desired{
			Name:       p.Name,
			UID:        p.UID,
			Generation: p.Generation,
			Digest:     r.digestFor(p),
			Spec:       *p.Spec.DeepCopy(),
		}
		if err := held[p.UID]; err != nil {
			d.Hold = dataplane.Hold(holdReason(err), err)
			out = append(out, d)
			continue
		}
		if v := v1alpha1.TenantViolations(&p.Spec); p.Spec.Tenant != nil && len(v) > 0 {
			err := fmt.Errorf("%w: %s", errTenancyViolation, strings.Join(v, "; "))
			d.Hold = dataplane.Hold(holdReason(err), err)
			logger.Info("refusing a tenant's program that leaves its namespace", "bpfProgram", p.Name, "tenant", p.Spec.Tenant.Namespace, "violations", v)
			out = append(out, d)
			continue
		}
		if d.Digest == "" {
			d.Hold = dataplane.Hold(holdReason(errWaitingForDigest), errWaitingForDigest)
			out = append(out, d)
			continue
		}
		policies := r.scopedPolicies(ctx, p, policies)
		if err := checkPinned(p, d.Digest); err != nil {
			d.Hold = dataplane.Hold(holdReason(err), err)
			logger.Info("refusing a digest the spec does not pin", "bpfProgram", p.Name, "digest", d.Digest, "image", p.Spec.Bundle.Image)
			out = append(out, d)
			continue
		}
		b, v, err := r.fetchVerified(ctx, p, d.Digest, policies, running[p.UID].Digest != d.Digest, took)
		if err != nil && (errors.Is(err, bundles.ErrRegistryUnavailable) || errors.Is(err, bundles.ErrKeyUnavailable)) &&
			running[p.UID].Digest == d.Digest {
			// The node already runs this digest, verified when it was
			// loaded (perhaps by a previous agent): an outage (registry,
			// or the API server serving a key's Secret) must not freeze
			// it, so map entries and attach points still follow the spec,
			// from the cached bundle.
			if b, err = r.runningBundle(ctx, p, d.Digest, policies); err == nil {
				d.Bundle, d.Signer = b, running[p.UID].Signer
				out = append(out, d)
				continue
			}
		}
		if err != nil {
			d.Hold = dataplane.Hold(holdReason(err), err)
			r.Metrics.AddFailures(holdReason(err), 1)
			logger.Info("holding BpfProgram at what runs", "bpfProgram", p.Name, "digest", d.Digest, "reason", holdReason(err), "error", err.Error())
		} else {
			d.Bundle = b
			d.Signer = v.Signer()
			verified[p.UID] = v.At
		}
		out = append(out, d)
	}
	return out, verified
}

// scopedPolicies returns the trust policies that may admit p's bundle:
// those without a namespaceSelector for a cluster program, those selecting
// the tenant's namespace for a BpfPodProgram's (none when the namespace
// cannot be read, so nothing is admitted by mistake).
func (r *Reconciler) scopedPolicies(ctx context.Context, p *v1alpha1.BpfProgram, policies []v1alpha1.BundleTrustPolicy) []v1alpha1.BundleTrustPolicy {
	if p.Spec.Tenant == nil {
		return trust.Scoped(policies, nil)
	}
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: p.Spec.Tenant.Namespace}, ns); err != nil {
		log.FromContext(ctx).Info("reading the tenant's namespace failed; no trust policy applies", "bpfProgram", p.Name, "error", err.Error())
		return nil
	}
	return trust.Scoped(policies, ns)
}

// fetchVerified verifies repository@digest against the trust policies, pulls
// it into the node cache and checks its program types, and the spec's hooks,
// against every covering policy. Verification comes first so that nothing
// untrusted is downloaded. fresh says the node does not run digest yet (a
// load follows).
func (r *Reconciler) fetchVerified(ctx context.Context, p *v1alpha1.BpfProgram, digest string, policies []v1alpha1.BundleTrustPolicy, fresh bool, took *phaseTimes) (*format.Bundle, Verification, error) {
	ref, err := remote.ParseReference(p.Spec.Bundle.Image)
	if err != nil {
		return nil, Verification{}, fmt.Errorf("parse bundle image of %s: %w", p.Name, err)
	}
	start := time.Now()
	v, err := r.Verifier.Verify(ctx, ref.Repository, digest, policies)
	took.verify += time.Since(start)
	r.Metrics.ObservePhase(metrics.PhaseVerify, time.Since(start))
	if err != nil {
		return nil, Verification{}, fmt.Errorf("verify %s@%s: %w", ref.Repository, digest, err)
	}
	if fresh {
		failpoint.Inject("after-verify")
	}
	start = time.Now()
	b, err := r.Bundles.Get(ctx, ref.Repository, digest)
	took.pull += time.Since(start)
	r.Metrics.ObservePhase(metrics.PhasePull, time.Since(start))
	if err != nil {
		return nil, Verification{}, fmt.Errorf("pull %s@%s: %w", ref.Repository, digest, err)
	}
	if err := trust.CheckProgramTypes(v.Result, b.Manifest); err != nil {
		return nil, Verification{}, fmt.Errorf("check program types of %s@%s: %w", ref.Repository, digest, err)
	}
	if err := trust.CheckAttachTypes(v.Result, p.Spec.Programs); err != nil {
		return nil, Verification{}, fmt.Errorf("check attach types of %s: %w", p.Name, err)
	}
	return b, v, nil
}

// running returns, by BpfProgram uid, an attached entry of what runs.
func running(states []v1alpha1.ProgramState) map[types.UID]v1alpha1.ProgramState {
	out := map[types.UID]v1alpha1.ProgramState{}
	for _, s := range states {
		if s.State == v1alpha1.PhaseAttached && s.ID != 0 {
			out[s.UID] = s
		}
	}
	return out
}

// runningBundle returns the cached bundle of a digest the node already runs,
// when the registry cannot be reached to verify it again. The trust policies
// still apply as far as they can without the registry: one must cover the
// repository, and every covering one must allow the bundle's program types
// and the spec's hooks.
func (r *Reconciler) runningBundle(ctx context.Context, p *v1alpha1.BpfProgram, digest string, policies []v1alpha1.BundleTrustPolicy) (*format.Bundle, error) {
	ref, err := remote.ParseReference(p.Spec.Bundle.Image)
	if err != nil {
		return nil, fmt.Errorf("parse bundle image of %s: %w", p.Name, err)
	}
	b, err := r.Bundles.Get(ctx, ref.Repository, digest)
	if err != nil {
		return nil, fmt.Errorf("get cached %s@%s: %w", ref.Repository, digest, err)
	}
	covering := trust.Covering(policies, ref.Repository)
	if len(covering) == 0 {
		return nil, fmt.Errorf("keep %s@%s: %w", ref.Repository, digest, bundles.ErrNoTrustPolicy)
	}
	// Every covering policy's allow-lists apply, as in Verify.
	limits := trust.Result{Limits: trust.Limits(covering)}
	if err := trust.CheckProgramTypes(limits, b.Manifest); err != nil {
		return nil, fmt.Errorf("check program types of %s@%s: %w", ref.Repository, digest, err)
	}
	if err := trust.CheckAttachTypes(limits, p.Spec.Programs); err != nil {
		return nil, fmt.Errorf("check attach types of %s: %w", p.Name, err)
	}
	return b, nil
}

// explainHolds makes sure every entry of a held program says why it is held,
// whatever the dataplane reported: the running entries keep their state, the
// others are Pending (transient or waiting) or Failed (will not verify).
func explainHolds(states []v1alpha1.ProgramState, desired []Desired) []v1alpha1.ProgramState {
	holds := map[types.UID]Desired{}
	for _, d := range desired {
		if d.Hold != nil {
			holds[d.UID] = d
		}
	}
	if len(holds) == 0 {
		return states
	}
	reported := map[types.UID]bool{}
	for i := range states {
		d, ok := holds[states[i].UID]
		if !ok {
			continue
		}
		reported[d.UID] = true
		s := &states[i]
		s.Reason = holdReason(d.Hold)
		s.Message = v1alpha1.Truncate(d.Hold.Error(), 2048)
		if s.State != v1alpha1.PhaseAttached {
			s.State = heldPhase(d.Hold)
		}
	}
	for _, d := range desired {
		if d.Hold == nil || reported[d.UID] {
			continue
		}
		for _, pa := range d.Spec.Programs {
			states = append(states, v1alpha1.ProgramState{
				BpfProgram: d.Name,
				UID:        d.UID,
				Generation: d.Generation,
				Digest:     d.Digest,
				Program:    pa.Name,
				State:      heldPhase(d.Hold),
				Reason:     holdReason(d.Hold),
				Message:    v1alpha1.Truncate(d.Hold.Error(), 2048),
			})
		}
	}
	return states
}

func heldPhase(hold error) v1alpha1.ProgramPhase {
	if holdReason(hold) == v1alpha1.ReasonVerifyFailed {
		return v1alpha1.PhaseFailed
	}
	return v1alpha1.PhasePending
}

// report creates the node's BpfNodeState when missing and writes its status
// when it differs from what it says now.
func (r *Reconciler) report(ctx context.Context, node *corev1.Node, states []v1alpha1.ProgramState, verified map[types.UID]time.Time, withStats bool) (changed bool, err error) {
	ns := &v1alpha1.BpfNodeState{}
	err = r.Client.Get(ctx, types.NamespacedName{Name: r.NodeName}, ns)
	switch {
	case apierrors.IsNotFound(err):
		ns = &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{
			Name: r.NodeName,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1",
				Kind:       "Node",
				Name:       node.Name,
				UID:        node.UID,
			}},
		}}
		if err := r.Client.Create(ctx, ns); err != nil {
			return false, fmt.Errorf("create BpfNodeState %s: %w", r.NodeName, err)
		}
		r.Metrics.StatusWritten("create")
	case err != nil:
		return false, fmt.Errorf("get BpfNodeState %s: %w", r.NodeName, err)
	}
	if r.Written != nil {
		r.Written.Freshen(ns)
	}

	next := r.nodeStatus(ns.Status, states, verified, withStats)
	next.Unmanaged = r.unmanaged(ctx, ns.Status.Unmanaged, states)
	if statusEqual(ns.Status, next, withStats) {
		return false, nil
	}
	start := time.Now()
	base := ns.DeepCopy()
	// The agent is the only writer of its status, so it replaces it whole
	// without a resourceVersion precondition: the cache it read may lag its
	// own last write, and a guarded update then fails with a conflict and is
	// retried, over and over on a busy apiserver (test/scale measured 12 of
	// 16 writes per node as 409s at 1,000 nodes).
	patch, err := json.Marshal([]jsonPatchOp{{Op: "add", Path: "/status", Value: next}})
	if err != nil {
		return false, fmt.Errorf("encode BpfNodeState %s status: %w", r.NodeName, err)
	}
	if err := r.Client.Status().Patch(ctx, ns, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return false, fmt.Errorf("write BpfNodeState %s status: %w", r.NodeName, err)
	}
	if r.Written != nil {
		r.Written.Wrote(base.ResourceVersion, ns)
	}
	ns.Status = next
	r.Metrics.ObservePhase(metrics.PhaseStatus, time.Since(start))
	r.Metrics.StatusWritten("status")
	r.recordTransitions(ns, base.Status.Programs, next.Programs)
	r.recordUnmanaged(ns, base.Status.Unmanaged, next.Unmanaged)
	return true, nil
}

// collectGarbage drops cached bundles no BpfProgram may need any more:
// neither the digest this node runs or must run, nor either side of any
// rollout (a halted rollout returns to the stable digest from the cache, and
// a node selected again reattaches without the registry). Bundles of deleted
// programs and superseded digests go once unused for the cache's
// KeepUnused.
func (r *Reconciler) collectGarbage(ctx context.Context, programs []v1alpha1.BpfProgram, states []v1alpha1.ProgramState) {
	gc, ok := r.Bundles.(interface {
		GC(keep []string) (int, error)
	})
	if !ok {
		return
	}
	var keep []string
	for i := range programs {
		p := &programs[i]
		keep = append(keep, r.digestFor(p), p.Status.ResolvedDigest)
		if ro := p.Status.Rollout; ro != nil {
			keep = append(keep, ro.StableDigest, ro.TargetDigest)
		}
	}
	for _, s := range states {
		keep = append(keep, s.Digest)
	}
	if n, err := gc.GC(keep); err != nil {
		log.FromContext(ctx).Error(err, "collect cached bundles")
	} else if n > 0 {
		log.FromContext(ctx).Info("removed unused cached bundles", "count", n)
	}
}

// recordTransitions counts and emits an event for every entry that turned
// Failed or Attached since the last written status.
func (r *Reconciler) recordTransitions(ns *v1alpha1.BpfNodeState, before, after []v1alpha1.ProgramState) {
	prev := map[string]v1alpha1.ProgramState{}
	for _, s := range before {
		prev[entryKey(s)] = s
	}
	for _, s := range after {
		old, had := prev[entryKey(s)]
		if had && old.State == s.State && old.Reason == s.Reason && old.Digest == s.Digest {
			continue
		}
		switch s.State {
		case v1alpha1.PhaseFailed:
			r.Metrics.AddFailures(s.Reason, 1)
			if r.Recorder != nil {
				r.Recorder.Eventf(ns, nil, corev1.EventTypeWarning, s.Reason, "Apply",
					"%s", v1alpha1.EventNote(fmt.Sprintf("%s/%s %s: %s", s.BpfProgram, s.Program, s.AttachPoint, s.Message)))
			}
		case v1alpha1.PhaseAttached:
			if r.Recorder != nil && (!had || old.State != v1alpha1.PhaseAttached || old.Digest != s.Digest) {
				r.Recorder.Eventf(ns, nil, corev1.EventTypeNormal, v1alpha1.ReasonAttached, "Apply",
					"%s/%s attached at %s (id %d, %s)", s.BpfProgram, s.Program, s.AttachPoint, s.ID, s.Digest)
			}
		}
	}
}

// reportRemounts emits a Warning Event on the node's BpfNodeState for each
// time the dataplane had to mount bpffs again (its pins were gone), when the
// dataplane says so (*dataplane.Dataplane does).
func (r *Reconciler) reportRemounts(ctx context.Context) {
	rd, ok := r.Dataplane.(interface{ TakeBPFFSRemounts() int })
	if !ok {
		return
	}
	n := rd.TakeBPFFSRemounts()
	if n == 0 {
		return
	}
	r.Metrics.AddFailures(v1alpha1.ReasonBPFFSRemounted, n)
	log.FromContext(ctx).Info("bpffs was gone and mounted again; programs pinned again", "times", n)
	if r.Recorder != nil {
		ns := &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: r.NodeName}}
		r.Recorder.Eventf(ns, nil, corev1.EventTypeWarning, v1alpha1.ReasonBPFFSRemounted, "Apply",
			"bpffs was unmounted under the agent; mounted it again and pinned again what runs (%d time(s))", n)
	}
}

// errNoNode is returned by SetupWithManager without a node name.
var errNoNode = errors.New("node name is empty")

// jsonPatchOp is one RFC 6902 operation; "add" at /status replaces the
// whole status, present or not.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}
