// Package operator wires bpfleet's reconcilers into a controller-runtime
// manager. cmd/bpfleet-operator runs it as a Deployment; `bpfleet local` and
// the e2e suites run it in their own process with Setup.
package operator

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/operator/internal/nodestate"
	"github.com/bpfleet/bpfleet/operator/podprogram"
	"github.com/bpfleet/bpfleet/operator/program"
	"github.com/bpfleet/bpfleet/operator/trustkeys"
	"github.com/bpfleet/bpfleet/operator/trustpolicy"
)

// Name is the operator's name in Events and leader election.
const Name = "bpfleet-operator"

// Options configure the operator.
type Options struct {
	// Remote are the registry options bundles are resolved, fetched and
	// verified with.
	Remote remote.Options
	// ResyncPeriod is how often pullPolicy: Always tags are resolved again;
	// zero means 5 minutes.
	ResyncPeriod time.Duration
	// Clock drives rollout pauses; nil means the real clock.
	Clock clock.PassiveClock
	// TrustNamespace is the only namespace trust-policy keys are read from
	// (Secrets); default trust.DefaultSecretNamespace.
	TrustNamespace string
	// CleanupTimeout bounds how long a deleted BpfProgram waits for nodes
	// that still report it; zero means program.DefaultCleanupTimeout.
	CleanupTimeout time.Duration
}

// Secrets are read one by one, only for trust policy keys that name them,
// through the Role bpfleet-trust-keys that the trustkeys reconciler keeps
// granting exactly those (config/rbac/common), not a marker here. The leader
// election Lease is granted by a namespaced Role there too.

// Setup adds the BpfProgram, BundleTrustPolicy, trust-keys Role and
// node-state garbage collection reconcilers to mgr, whose scheme must hold
// bpfleet's and client-go's kinds.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	// Manifests and signature checks are remembered by digest: a second
	// BpfProgram of an admitted bundle costs only the tag's resolve.
	rc := &remote.ManifestMemo{Client: remote.New(opts.Remote)}
	keys := trust.SecretKeys(mgr.GetAPIReader(), opts.TrustNamespace)
	recorder := mgr.GetEventRecorder(Name)
	programs := &program.Reconciler{
		Client:         mgr.GetClient(),
		Registry:       rc,
		Verifier:       &trust.Verifier{Remote: opts.Remote, Keys: keys, Signatures: &signing.Memo{}},
		Recorder:       recorder,
		Clock:          opts.Clock,
		ResyncPeriod:   opts.ResyncPeriod,
		CleanupTimeout: opts.CleanupTimeout,
	}
	if err := programs.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	policies := &trustpolicy.Reconciler{Client: mgr.GetClient(), Keys: keys, Recorder: recorder}
	if err := policies.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	trustKeys := &trustkeys.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: opts.TrustNamespace}
	if err := trustKeys.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	podPrograms := &podprogram.Reconciler{Client: mgr.GetClient()}
	if err := podPrograms.SetupWithManager(mgr); err != nil {
		return err
	}
	gc := &nodestate.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	return gc.SetupWithManager(ctx, mgr)
}

// CacheOptions are the cache options for the operator's manager. Nodes are
// cached with only what the reconcilers read (name, uid, labels, deletion,
// finalizers, the Ready condition): at 5,000 nodes the full objects, with
// their images and managed fields, would be most of the operator's memory.
//
// BpfNodeStates likewise keep only what the rollout and the counts read
// (TrimNodeState): with 100 programs on 200 nodes the full reports, their
// run-time statistics and managed fields were most of the rest.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Node{}:           {Transform: TrimNode},
		&v1alpha1.BpfNodeState{}: {Transform: TrimNodeState},
	}}
}

// TrimNodeState is the cache transform of BpfNodeStates: it keeps the
// metadata, the kernel, and of each row what the operator
// decides and counts by (program, uid, generation, digest, program name,
// attach point, pod counts, state, reason, message), and drops the ids,
// sizes, run-time statistics, signer, conditions and unmanaged inventory that only
// users read (kubectl and the plugin read the object from the API server,
// not this cache). A change to a dropped field is then no change to the
// operator: a stats refresh wakes no reconcile. The cache's objects are
// never written back. Anything but a *v1alpha1.BpfNodeState passes
// unchanged.
func TrimNodeState(obj any) (any, error) {
	s, ok := obj.(*v1alpha1.BpfNodeState)
	if !ok {
		return obj, nil
	}
	out := &v1alpha1.BpfNodeState{TypeMeta: s.TypeMeta, ObjectMeta: keptMetadata(s.ObjectMeta)}
	out.Status.Kernel = s.Status.Kernel
	if len(s.Status.Programs) > 0 {
		out.Status.Programs = make([]v1alpha1.ProgramState, len(s.Status.Programs))
		for i, e := range s.Status.Programs {
			out.Status.Programs[i] = v1alpha1.ProgramState{
				BpfProgram: e.BpfProgram, UID: e.UID, Generation: e.Generation, Digest: e.Digest,
				Program: e.Program, AttachPoint: e.AttachPoint, Pods: e.Pods,
				State: e.State, Reason: e.Reason, Message: e.Message,
			}
		}
	}
	return out, nil
}

// TrimNode is the cache transform of Nodes: it keeps the metadata the
// operator selects and collects by and the Ready condition, and drops the
// rest. Anything but a *corev1.Node passes unchanged.
func TrimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	out := &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: keptMetadata(n.ObjectMeta)}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status, Reason: c.Reason, LastTransitionTime: c.LastTransitionTime}}
		}
	}
	return out, nil
}

// keptMetadata is what the cache transforms keep of an object's metadata:
// what the operator selects, collects and reconciles by, without
// annotations or managed fields.
func keptMetadata(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              m.Name,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		Labels:            m.Labels,
		DeletionTimestamp: m.DeletionTimestamp,
		Finalizers:        m.Finalizers,
		CreationTimestamp: m.CreationTimestamp,
	}
}
