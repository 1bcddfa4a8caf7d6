// Package program reconciles BpfPrograms: it resolves the bundle reference to
// one digest, verifies it against the BundleTrustPolicies, rolls it out to
// the selected nodes wave by wave through status.rollout (which agents read
// with api/rollout.DigestForNode), and sums the nodes' BpfNodeState reports
// into status.
package program

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// VerifiedForAnnotation records, on the BpfProgram, the inputs (digest,
// generation, covering trust policies) of the last completed verification,
// so that node reports do not cause a registry round trip each; a change of
// any input verifies again.
const VerifiedForAnnotation = "bpfleet.io/verified-for"

// Registry resolves references and fetches bundle manifests (the image
// manifest and config blob, never the ELF layers: the operator loads
// nothing); *remote.Client is one.
type Registry interface {
	Resolve(ctx context.Context, ref string) (digest string, err error)
	FetchManifest(ctx context.Context, repository, digest string) (*format.Manifest, error)
}

// Verifier admits a digest against trust policies; *trust.Verifier is one.
type Verifier interface {
	Verify(ctx context.Context, repository, digest string, policies []v1alpha1.BundleTrustPolicy) (trust.Result, error)
}

// Reconciler reconciles BpfPrograms.
type Reconciler struct {
	// Client reads through the manager's cache and writes to the API server.
	Client client.Client
	// Registry resolves tags and fetches bundle manifests.
	Registry Registry
	// Verifier checks signatures against the trust policies.
	Verifier Verifier
	// Recorder emits Events.
	Recorder events.EventRecorder
	// Clock tells the time for rollout pauses; nil means the real clock.
	Clock clock.PassiveClock
	// ResyncPeriod is how often a pullPolicy: Always tag is resolved again;
	// zero means 5 minutes.
	ResyncPeriod time.Duration
	// NodeStateDelay is how long a BpfNodeState change waits before it
	// wakes the BpfPrograms it reports, so that the reports of a wave of
	// nodes are summed in one reconcile and one status patch; zero means
	// DefaultNodeStateDelay,
	// negative none.
	NodeStateDelay time.Duration
	// CleanupTimeout is how long a deleted BpfProgram waits for live nodes
	// that still report it (see finalizer.go); zero means
	// DefaultCleanupTimeout.
	CleanupTimeout time.Duration
	// ProgressInterval is the shortest time between two status patches of
	// one BpfProgram whose only change is progress: node counts, kernel
	// compatibility counts, rollout.updatedNodes and failedNodes, and the
	// messages of conditions whose status and reason stay. Agents read
	// none of these (they watch BpfProgramTargets, target.go), but each
	// patch is an etcd write and an event to every BpfProgram watcher
	// (BpfPodPrograms' controller, kubectl); a change of what nodes run (target, stable, wave, halt,
	// paused kernels) or of a condition's status or reason (Ready when the
	// last node attached, Degraded on a failure) is written at once. Zero
	// means DefaultProgressInterval, negative none.
	ProgressInterval time.Duration
}

// DefaultProgressInterval is the default Reconciler.ProgressInterval.
const DefaultProgressInterval = 5 * time.Second

// DefaultNodeStateDelay is the default Reconciler.NodeStateDelay.
const DefaultNodeStateDelay = 500 * time.Millisecond

// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfprograms,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfprograms/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bpfnodestates,verbs=get;list;watch
// +kubebuilder:rbac:groups=bpfleet.io,resources=bundletrustpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// scope carries what the phases of one Reconcile share.
type scope struct {
	program *v1alpha1.BpfProgram
	ref     remote.Reference
	// digest is the digest the current spec resolved to, "" if unknown.
	digest string
	// verified is digest when it was admitted for the current generation.
	verified string
	// verifiedFor is the VerifiedForAnnotation value to record.
	verifiedFor string
	// resolved tells that a requested re-resolve was done.
	resolved bool
	// nodes are the selected nodes; listed tells they could be listed.
	nodes   []NodeView
	listed  bool
	requeue time.Duration
	// holdStatus tells that the status changed in progress only, too soon
	// after the last status write: the patch waits for requeue.
	holdStatus bool
	// addFinalizer tells that the node-cleanup finalizer is missing: it is
	// added with the reconcile's metadata patch, before any status patch
	// lets agents run the program, so that a new program costs one
	// metadata write (finalizer and VerifiedForAnnotation) rather than two.
	addFinalizer bool
}

// Reconcile moves one BpfProgram towards its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	p := &v1alpha1.BpfProgram{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone without the finalizer: agents detach once its target is.
			return ctrl.Result{}, DeleteTarget(ctx, r.Client, req.Name)
		}
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		// Agents detach a deleted program once its target is gone; the
		// finalizer waits for them.
		if err := DeleteTarget(ctx, r.Client, p.Name); err != nil {
			return ctrl.Result{}, err
		}
		return r.finalize(ctx, p)
	}
	// The node-cleanup finalizer is added by patch, after the status: the
	// rollout reaches the agents one API write sooner, and the finalizer
	// shares its write with the annotations.
	before := p.DeepCopy()
	s := &scope{program: p, addFinalizer: !controllerutil.ContainsFinalizer(p, v1alpha1.FinalizerNodeCleanup)}
	defer func() {
		if err := r.patch(ctx, before, s); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	var transient, permanent error
	for _, phase := range []func(context.Context, *scope) error{
		r.reconcileBundle,
		r.reconcileVerification,
		r.reconcileNodes,
		r.reconcileRollout,
	} {
		err := phase(ctx, s)
		switch {
		case err == nil:
		case errors.Is(err, reconcile.TerminalError(nil)):
			permanent = errors.Join(permanent, err)
		default:
			transient = errors.Join(transient, err)
		}
	}
	p.Status.ObservedGeneration = p.Generation
	if transient != nil {
		return ctrl.Result{}, transient
	}
	if permanent != nil {
		return ctrl.Result{}, permanent
	}
	if wait := r.progressWait(before, p); wait > 0 {
		s.holdStatus = true
		if s.requeue == 0 || wait < s.requeue {
			s.requeue = wait
		}
	}
	return ctrl.Result{RequeueAfter: s.requeue}, nil
}

// progressWait returns how long the status patch of p waits: zero when the
// change is more than progress (see ProgressInterval) or the last status
// write is ProgressInterval old. The last write's time is the object's own:
// the newest managedFields entry of the status subresource, since the
// operator is the only writer of a BpfProgram's status.
func (r *Reconciler) progressWait(before, p *v1alpha1.BpfProgram) time.Duration {
	interval := r.ProgressInterval
	if interval == 0 {
		interval = DefaultProgressInterval
	}
	if interval < 0 || !ProgressOnly(before.Status, p.Status) {
		return 0
	}
	var last time.Time
	for _, f := range p.ManagedFields {
		if f.Subresource == "status" && f.Time != nil && f.Time.After(last) {
			last = f.Time.Time
		}
	}
	if last.IsZero() {
		return 0
	}
	// managedFields times are the API server's, to the second: compare
	// with the wall clock (not r.Clock, which tests move), and never wait
	// longer than one interval and that second, whatever the clocks' skew.
	wait := time.Until(last.Add(interval + time.Second))
	return min(max(wait, 0), interval+time.Second)
}

func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// patch writes the agents' BpfProgramTarget when what they read changed
// (target.go), status once, only when it changed and is not held
// (ProgressInterval), then, in one write, the metadata the reconcile added,
// consumed or recorded (the node-cleanup finalizer when missing, resolve
// annotation, VerifiedForAnnotation). The status goes first so that the
// agents see a rollout as soon as it is decided. A program deleted before
// its finalizer was added needs none: agents detach what no longer exists,
// and collect its pins at start.
func (r *Reconciler) patch(ctx context.Context, before *v1alpha1.BpfProgram, s *scope) error {
	p := s.program
	if _, err := WriteTarget(ctx, r.Client, p); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !s.holdStatus && !equality.Semantic.DeepEqual(before.Status, p.Status) {
		if err := r.Client.Status().Patch(ctx, p, client.MergeFrom(before)); err != nil {
			// Deleted meanwhile: nothing left to describe.
			return client.IgnoreNotFound(fmt.Errorf("patch status: %w", err))
		}
	}
	return r.patchMetadata(ctx, s)
}

func (r *Reconciler) patchMetadata(ctx context.Context, s *scope) error {
	p := s.program
	meta := p.DeepCopy()
	changed := false
	var opts []client.MergeFromOption
	if s.addFinalizer {
		controllerutil.AddFinalizer(meta, v1alpha1.FinalizerNodeCleanup)
		// The finalizer list is replaced whole: fail on a concurrent edit
		// rather than drop someone else's finalizer.
		opts = append(opts, client.MergeFromWithOptimisticLock{})
		changed = true
	}
	if _, ok := meta.Annotations[v1alpha1.ResolveAnnotation]; ok && s.resolved {
		delete(meta.Annotations, v1alpha1.ResolveAnnotation)
		changed = true
	}
	if s.verifiedFor != "" && meta.Annotations[VerifiedForAnnotation] != s.verifiedFor {
		if meta.Annotations == nil {
			meta.Annotations = map[string]string{}
		}
		meta.Annotations[VerifiedForAnnotation] = s.verifiedFor
		changed = true
	}
	if !changed {
		return nil
	}
	if err := r.Client.Patch(ctx, meta, client.MergeFromWithOptions(p, opts...)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("patch finalizer and annotations: %w", err))
	}
	return nil
}

// needResolve tells whether the tag must be resolved again. A resolved digest
// is kept until the spec changes, pullPolicy is Always, or the resolve
// annotation asks: a moving tag never splits the fleet over two digests.
func needResolve(p *v1alpha1.BpfProgram, ref remote.Reference) bool {
	if _, ok := p.Annotations[v1alpha1.ResolveAnnotation]; ok {
		return true
	}
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionBundleResolved)
	return p.Spec.Bundle.PullPolicy == v1alpha1.PullAlways ||
		p.Status.ResolvedDigest == "" ||
		p.Status.ResolvedImage != ref.Repository ||
		c == nil || c.ObservedGeneration != p.Generation ||
		c.Reason == v1alpha1.ReasonRegistryUnavailable || c.Reason == v1alpha1.ReasonResolveFailed
}

// reconcileBundle resolves spec.bundle.image to the digest the fleet runs.
func (r *Reconciler) reconcileBundle(ctx context.Context, s *scope) error {
	p := s.program
	p.Status.AttachTypes = AttachTypes(p)
	ref, err := remote.ParseReference(p.Spec.Bundle.Image)
	if err != nil {
		r.setBundleResolvedCondition(s, false, v1alpha1.ReasonResolveFailed, err.Error())
		return reconcile.TerminalError(fmt.Errorf("parse bundle reference: %w", err))
	}
	s.ref = ref
	digest := ref.Digest
	switch {
	case digest != "":
		// A digest reference is used as is.
	case needResolve(p, ref):
		d, err := r.Registry.Resolve(ctx, p.Spec.Bundle.Image)
		if err != nil {
			if errors.Is(err, bundles.ErrRegistryUnavailable) {
				r.setBundleResolvedCondition(s, false, v1alpha1.ReasonRegistryUnavailable, err.Error())
				return fmt.Errorf("resolve %s: %w", p.Spec.Bundle.Image, err)
			}
			r.setBundleResolvedCondition(s, false, v1alpha1.ReasonResolveFailed, err.Error())
			// A tag pushed later is picked up at the next resync.
			s.requeue = r.resync()
			return nil
		}
		digest = d
		s.resolved = true
	default:
		digest = p.Status.ResolvedDigest
	}
	if p.Spec.Bundle.PullPolicy == v1alpha1.PullAlways && ref.Digest == "" {
		s.requeue = r.resync()
	}
	s.digest = digest
	p.Status.ResolvedDigest = digest
	p.Status.ShortDigest = v1alpha1.ShortDigest(digest)
	p.Status.ResolvedImage = ref.Repository
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionBundleResolved); c == nil ||
		c.Status != metav1.ConditionFalse || c.ObservedGeneration != p.Generation ||
		c.Reason == v1alpha1.ReasonRegistryUnavailable || c.Reason == v1alpha1.ReasonResolveFailed {
		// The manifest check in reconcileVerification may still turn it False.
		r.setBundleResolvedCondition(s, true, v1alpha1.ReasonResolved, "resolved to "+ref.Repository+"@"+digest)
	}
	return nil
}

func (r *Reconciler) resync() time.Duration {
	if r.ResyncPeriod > 0 {
		return r.ResyncPeriod
	}
	return 5 * time.Minute
}

// scopedPolicies returns the trust policies that may admit p's bundle (see
// trust.Scoped): a BpfPodProgram's program is judged only by the policies
// selecting its namespace, with the namespace's labels as they are now.
func (r *Reconciler) scopedPolicies(ctx context.Context, p *v1alpha1.BpfProgram, policies []v1alpha1.BundleTrustPolicy) ([]v1alpha1.BundleTrustPolicy, error) {
	if p.Spec.Tenant == nil {
		return trust.Scoped(policies, nil), nil
	}
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: p.Spec.Tenant.Namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get tenant namespace %s: %w", p.Spec.Tenant.Namespace, err)
	}
	return trust.Scoped(policies, ns), nil
}

// verificationKey hashes what a verification depends on.
func verificationKey(p *v1alpha1.BpfProgram, repository, digest string, policies []v1alpha1.BundleTrustPolicy) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s@%s\x00%d\x00", repository, digest, p.Generation)
	for _, pol := range policies {
		if trust.Covers(pol, repository) {
			fmt.Fprintf(h, "%s/%s/%d\x00", pol.Name, pol.UID, pol.Generation)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// reconcileVerification admits the digest: the trust policies' keys signed
// it, every covering policy allows its manifest's program types and the
// spec's hooks, and the manifest holds every program the spec names with a
// type its attach block takes. It reads the manifest only; agents check the
// ELF objects against it before loading them.
func (r *Reconciler) reconcileVerification(ctx context.Context, s *scope) error {
	p := s.program
	if s.digest == "" || !bundleResolvedNow(p) && !isManifestRefusal(p) {
		return nil
	}
	var policies v1alpha1.BundleTrustPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return fmt.Errorf("list trust policies: %w", err)
	}
	slices.SortFunc(policies.Items, func(a, b v1alpha1.BundleTrustPolicy) int { return compareNames(a.Name, b.Name) })
	scoped, err := r.scopedPolicies(ctx, p, policies.Items)
	if err != nil {
		return err
	}
	key := verificationKey(p, s.ref.Repository, s.digest, scoped)
	if p.Annotations[VerifiedForAnnotation] == key && !retryable(p) {
		// Same inputs as the last verification: keep its outcome.
		if meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionSignatureVerified) &&
			meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionBundleResolved) {
			s.verified = s.digest
		}
		return nil
	}

	res, err := r.Verifier.Verify(ctx, s.ref.Repository, s.digest, scoped)
	if err != nil {
		reason := signatureReason(err)
		r.setSignatureVerifiedCondition(s, false, reason, err.Error())
		if transientReason(reason) {
			return fmt.Errorf("verify %s: %w", v1alpha1.ShortDigest(s.digest), err)
		}
		s.verifiedFor = key
		return reconcile.TerminalError(fmt.Errorf("verify %s: %w", v1alpha1.ShortDigest(s.digest), err))
	}
	// The manifest only: whether it tells the truth about its ELF objects
	// is checked by every agent, which downloads them to load them.
	m, err := r.Registry.FetchManifest(ctx, s.ref.Repository, s.digest)
	if err != nil {
		if errors.Is(err, bundles.ErrRegistryUnavailable) || errors.Is(err, bundles.ErrRegistryDenied) {
			// Denied: credentials can be fixed (a Secret update) and retried.
			r.setBundleResolvedCondition(s, false, v1alpha1.ReasonRegistryUnavailable, err.Error())
			return fmt.Errorf("fetch %s: %w", v1alpha1.ShortDigest(s.digest), err)
		}
		r.setBundleResolvedCondition(s, false, v1alpha1.ReasonBundleInvalid, err.Error())
		s.verifiedFor = key
		return reconcile.TerminalError(fmt.Errorf("fetch %s: %w", v1alpha1.ShortDigest(s.digest), err))
	}
	if err := trust.CheckProgramTypes(res, m); err != nil {
		r.setSignatureVerifiedCondition(s, false, v1alpha1.ReasonProgramTypeDenied, err.Error())
		s.verifiedFor = key
		return reconcile.TerminalError(fmt.Errorf("check program types: %w", err))
	}
	if err := trust.CheckAttachTypes(res, p.Spec.Programs); err != nil {
		r.setSignatureVerifiedCondition(s, false, v1alpha1.ReasonAttachTypeDenied, err.Error())
		s.verifiedFor = key
		return reconcile.TerminalError(fmt.Errorf("check attach types: %w", err))
	}
	if reason, msg := checkPrograms(p, m); reason != "" {
		// The signature is fine; the bundle does not fit the spec.
		r.setSignatureVerifiedCondition(s, true, verifiedReason(res), "admitted by "+res.Signer())
		r.setBundleResolvedCondition(s, false, reason, msg)
		s.verifiedFor = key
		return reconcile.TerminalError(errors.New(msg))
	}
	p.Status.Signer = res.Signer()
	r.setSignatureVerifiedCondition(s, true, verifiedReason(res), "admitted by "+res.Signer())
	r.setBundleResolvedCondition(s, true, v1alpha1.ReasonResolved, "resolved to "+s.ref.Repository+"@"+s.digest)
	s.verified = s.digest
	s.verifiedFor = key
	return nil
}

func compareNames(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// bundleResolvedNow tells whether BundleResolved is True for this generation.
func bundleResolvedNow(p *v1alpha1.BpfProgram) bool {
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionBundleResolved)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == p.Generation
}

// isManifestRefusal tells whether BundleResolved is False because of the
// bundle's content, which a later verification may clear.
func isManifestRefusal(p *v1alpha1.BpfProgram) bool {
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionBundleResolved)
	return c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == p.Generation &&
		(c.Reason == v1alpha1.ReasonProgramNotInBundle || c.Reason == v1alpha1.ReasonAttachMismatch || c.Reason == v1alpha1.ReasonBundleInvalid)
}

// retryable tells whether the last verification ended on a transient error.
func retryable(p *v1alpha1.BpfProgram) bool {
	for _, t := range []string{v1alpha1.ConditionSignatureVerified, v1alpha1.ConditionBundleResolved} {
		c := meta.FindStatusCondition(p.Status.Conditions, t)
		if c == nil || transientReason(c.Reason) {
			return true
		}
	}
	return false
}

// transientReason tells whether a refusal reason says nothing about the
// bundle: the registry or a trust key's Secret could not be read, and
// retrying soon may succeed.
func transientReason(reason string) bool {
	return reason == v1alpha1.ReasonRegistryUnavailable || reason == v1alpha1.ReasonKeyUnavailable
}

func verifiedReason(res trust.Result) string {
	if res.Unsigned {
		return v1alpha1.ReasonUnsignedAllowed
	}
	return v1alpha1.ReasonVerified
}

// signatureReason maps a verification error to its condition reason.
func signatureReason(err error) string {
	switch {
	case errors.Is(err, bundles.ErrRegistryUnavailable), errors.Is(err, bundles.ErrRegistryDenied):
		return v1alpha1.ReasonRegistryUnavailable
	case errors.Is(err, bundles.ErrKeyUnavailable):
		// Before the refusals it is joined with: a key not read is no verdict.
		return v1alpha1.ReasonKeyUnavailable
	case errors.Is(err, bundles.ErrNoTrustPolicy):
		return v1alpha1.ReasonNoTrustPolicy
	case errors.Is(err, bundles.ErrUnsigned):
		return v1alpha1.ReasonUnsigned
	case errors.Is(err, bundles.ErrProgramTypeDenied):
		return v1alpha1.ReasonProgramTypeDenied
	case errors.Is(err, bundles.ErrAttachTypeDenied):
		return v1alpha1.ReasonAttachTypeDenied
	default:
		return v1alpha1.ReasonSignatureMismatch
	}
}

// checkPrograms returns a reason and message when a program the spec names is
// not in the manifest or cannot be attached the way the spec says.
func checkPrograms(p *v1alpha1.BpfProgram, m *format.Manifest) (reason, msg string) {
	for _, a := range p.Spec.Programs {
		prog, ok := m.Program(a.Name)
		if !ok {
			return v1alpha1.ReasonProgramNotInBundle, fmt.Sprintf("program %q is not in bundle %s", a.Name, m.Name)
		}
		if !Compatible(a, prog) {
			return v1alpha1.ReasonAttachMismatch, fmt.Sprintf("program %q is of type %s and cannot be attached as %s", a.Name, prog.Type, hooks.AttachType(a))
		}
	}
	return "", ""
}

// reconcileNodes lists the selected nodes and their reports: Nodes from the
// metadata cache, BpfNodeStates through the index of the uids they report.
func (r *Reconciler) reconcileNodes(ctx context.Context, s *scope) error {
	p := s.program
	sel := labels.Everything()
	if p.Spec.NodeSelector != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(p.Spec.NodeSelector); err != nil {
			// Admitted around validation (an older CRD): agents keep what
			// runs of it and the rollout stands still; say why.
			r.setDegradedCondition(s, cond(v1alpha1.ConditionDegraded, true, v1alpha1.ReasonInvalidNodeSelector,
				fmt.Sprintf("nodeSelector cannot be evaluated; nodes keep what runs: %v", err)))
			return reconcile.TerminalError(fmt.Errorf("parse node selector: %w", err))
		}
	}
	nodes := &corev1.NodeList{}
	if err := r.Client.List(ctx, nodes, client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	// The cache's own objects, not copies: a hundred programs on a
	// thousand nodes would copy every report on every reconcile. Nothing
	// here writes to them.
	var states v1alpha1.BpfNodeStateList
	if err := r.Client.List(ctx, &states, client.MatchingFields{IndexProgramUID: string(p.UID)}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list node states: %w", err)
	}
	byName := make(map[string]*v1alpha1.BpfNodeState, len(states.Items))
	for i := range states.Items {
		byName[states.Items[i].Name] = &states.Items[i]
	}
	s.nodes = make([]NodeView, 0, len(nodes.Items))
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !n.DeletionTimestamp.IsZero() {
			continue
		}
		s.nodes = append(s.nodes, NodeView{Name: n.Name, State: byName[n.Name], NotReady: NodeNotReady(n)})
	}
	s.listed = true
	return nil
}

// reconcileRollout decides status.rollout, then sums the nodes and sets
// RolledOut, Ready and Degraded.
func (r *Reconciler) reconcileRollout(_ context.Context, s *scope) error {
	p := s.program
	if !s.listed {
		// Without the nodes every wave would look complete: decide nothing.
		return nil
	}
	paused := false
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionRolledOut); c != nil {
		paused = c.Reason == v1alpha1.ReasonRolloutPaused || c.Reason == v1alpha1.ReasonKernelsPaused
	}
	d := DecideRollout(RolloutInput{Now: r.now(), Program: p, Verified: s.verified, Paused: paused, Nodes: s.nodes})
	p.Status.Rollout = d.Rollout
	r.setRolledOutCondition(s, d.RolledOut)
	for _, e := range d.Events {
		r.Recorder.Eventf(p, nil, e.Type, e.Reason, "Rollout", "%s", v1alpha1.EventNote(e.Message))
	}
	if d.RequeueAfter > 0 && (s.requeue == 0 || d.RequeueAfter < s.requeue) {
		s.requeue = d.RequeueAfter
	}

	sum := Summarize(SummaryInput{Program: p, Nodes: s.nodes})
	p.Status.Nodes = sum.Counts
	p.Status.Kernels = sum.Kernels
	ready, degraded := DecideReady(ReadyInput{Rollout: p.Status.Rollout, Refused: refusal(p, s), Summary: sum})
	r.setReadyCondition(s, ready)
	r.setDegradedCondition(s, degraded)
	return nil
}

// refusal returns the BundleResolved or SignatureVerified condition that is
// False for the current generation. An unreachable registry (or an
// unreadable trust key) while checking the digest that already runs again (pullPolicy Always, the resolve
// annotation) refuses nothing: Ready keeps telling how the nodes do.
func refusal(p *v1alpha1.BpfProgram, s *scope) *metav1.Condition {
	recheck := p.Status.Rollout != nil && p.Status.Rollout.TargetDigest == p.Status.ResolvedDigest &&
		p.Status.ResolvedImage == s.ref.Repository
	for _, t := range []string{v1alpha1.ConditionSignatureVerified, v1alpha1.ConditionBundleResolved} {
		c := meta.FindStatusCondition(p.Status.Conditions, t)
		if c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == p.Generation &&
			(!transientReason(c.Reason) || !recheck) {
			return c
		}
	}
	return nil
}

// set writes condition c and reports whether its status or reason changed.
func set(s *scope, c metav1.Condition) bool {
	c.ObservedGeneration = s.program.Generation
	old := meta.FindStatusCondition(s.program.Status.Conditions, c.Type)
	changed := old == nil || old.Status != c.Status || old.Reason != c.Reason
	meta.SetStatusCondition(&s.program.Status.Conditions, c)
	return changed
}

func (r *Reconciler) setBundleResolvedCondition(s *scope, ok bool, reason, msg string) {
	if set(s, cond(v1alpha1.ConditionBundleResolved, ok, reason, msg)) && !ok {
		r.Recorder.Eventf(s.program, nil, corev1.EventTypeWarning, reason, "Resolve", "%s", v1alpha1.EventNote(msg))
	}
}

func (r *Reconciler) setSignatureVerifiedCondition(s *scope, ok bool, reason, msg string) {
	changed := set(s, cond(v1alpha1.ConditionSignatureVerified, ok, reason, msg))
	switch {
	case ok:
		// A new digest admitted is news even when the condition stays True.
		r.Recorder.Eventf(s.program, nil, corev1.EventTypeNormal, v1alpha1.ReasonVerified, "Verify", "%s", v1alpha1.EventNote(fmt.Sprintf("%s@%s %s", s.ref.Repository, v1alpha1.ShortDigest(s.digest), msg)))
		if reason == v1alpha1.ReasonUnsignedAllowed {
			r.Recorder.Eventf(s.program, nil, corev1.EventTypeWarning, v1alpha1.ReasonUnsignedAllowed, "Verify", "%s", v1alpha1.EventNote(fmt.Sprintf("%s@%s runs without a valid signature: %s", s.ref.Repository, v1alpha1.ShortDigest(s.digest), msg)))
		}
	case changed:
		r.Recorder.Eventf(s.program, nil, corev1.EventTypeWarning, reason, "Verify", "%s", v1alpha1.EventNote(fmt.Sprintf("%s@%s refused: %s", s.ref.Repository, v1alpha1.ShortDigest(s.digest), msg)))
	}
}

func (r *Reconciler) setRolledOutCondition(s *scope, c metav1.Condition) { set(s, c) }

func (r *Reconciler) setReadyCondition(s *scope, c metav1.Condition) { set(s, c) }

func (r *Reconciler) setDegradedCondition(s *scope, c metav1.Condition) {
	if set(s, c) && c.Status == metav1.ConditionTrue {
		r.Recorder.Eventf(s.program, nil, corev1.EventTypeWarning, c.Reason, "Summarize", "%s", v1alpha1.EventNote(c.Message))
	}
}
