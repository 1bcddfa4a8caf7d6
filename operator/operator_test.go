package operator_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/operator"
	"github.com/bpfleet/bpfleet/test/envtest"
	"github.com/bpfleet/bpfleet/test/registry"
	"github.com/bpfleet/bpfleet/test/registry/testbundle"
)

var env *envtest.Env

// TestMain does what envtest.Run does, and stops the operator before the
// control plane so the API server does not wait on its watches.
func TestMain(m *testing.M) {
	e, err := envtest.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		os.Exit(1)
	}
	env = e
	code := m.Run()
	if stopOperator != nil {
		stopOperator()
		<-operatorDone
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
	}
	os.Exit(code)
}

var (
	startOnce    sync.Once
	stopOperator context.CancelFunc
	operatorDone = make(chan struct{})
	// clock drives rollout pauses; tests step it.
	clock = clocktesting.NewFakeClock(time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC))
)

// startOperator runs the operator in this process, once for the package,
// against the test control plane, as `bpfleet local` does.
func startOperator(t testing.TB) {
	t.Helper()
	startOnce.Do(func() {
		// Reconcile errors only: they explain a failing wait.
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
		mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
			Cache:      operator.CacheOptions(),
			Scheme:     scheme.New(),
			Metrics:    metricsserver.Options{BindAddress: "0"},
			Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopOperator = cancel
		err = operator.Setup(ctx, mgr, operator.Options{Remote: remote.Options{PlainHTTP: true}, Clock: clock, CleanupTimeout: cleanupTimeout})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(operatorDone)
			if err := mgr.Start(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}()
	})
}

const password = "test-password"

// keyPair generates a cosign key pair and returns the private key path and
// the public key PEM.
func keyPair(t testing.TB) (priv, pubPEM string) {
	t.Helper()
	priv, pub, err := signing.GenerateKeyPair(t.TempDir(), []byte(password))
	if err != nil {
		t.Fatalf("generate key pair: %v", err)
	}
	data, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, string(data)
}

func sign(t testing.TB, ref, priv string) {
	t.Helper()
	if err := signing.Sign(context.Background(), ref, priv, []byte(password), remote.Options{PlainHTTP: true}); err != nil {
		t.Fatalf("sign %s: %v", ref, err)
	}
}

// trustPolicy creates a policy trusting pubPEM for every repository of reg.
func trustPolicy(t testing.TB, name string, reg *registry.Registry, pubPEM string) *v1.BundleTrustPolicy {
	t.Helper()
	pol := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.BundleTrustPolicySpec{
			Images: []string{reg.Host + "/*", reg.Host + "/*/*"},
			Keys:   []v1.TrustedKey{{Name: "test-key", PublicKey: pubPEM}},
		},
	}
	create(t, pol)
	return pol
}

func create(t testing.TB, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
}

// nodes creates n Nodes named prefix-NN labelled bpfleet.io/test=prefix.
func nodes(t testing.TB, prefix string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("%s-%02d", prefix, i),
			Labels: map[string]string{"bpfleet.io/test": prefix},
		}}
		create(t, node)
		names = append(names, node.Name)
		t.Cleanup(func() {
			_ = env.Client.Delete(context.Background(), &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node.Name}})
		})
	}
	return names
}

// program creates a BpfProgram running the test bundle's two programs on
// the nodes labelled bpfleet.io/test=selector.
func program(t testing.TB, name, image, selector string, mutate ...func(*v1.BpfProgram)) *v1.BpfProgram {
	t.Helper()
	p := &v1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: image},
			Programs: []v1.ProgramAttachment{
				{Name: testbundle.XDPProgram, XDP: &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}}},
				{Name: testbundle.TracepointProgram, Tracepoint: &v1.TracepointAttach{Group: "syscalls", Name: "sys_enter_openat"}},
			},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bpfleet.io/test": selector}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	create(t, p)
	return p
}

// report writes node's BpfNodeState as its agent would: every program of p
// at digest in phase, on kernel release.
func report(t testing.TB, p *v1.BpfProgram, node, release, digest string, phase v1.ProgramPhase) {
	t.Helper()
	ctx := context.Background()
	state := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(state), state); apierrors.IsNotFound(err) {
		if err := env.Client.Create(ctx, state); err != nil {
			t.Fatalf("create node state %s: %v", node, err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	entries := slices.DeleteFunc(state.Status.Programs, func(e v1.ProgramState) bool { return e.UID == p.UID })
	for _, a := range p.Spec.Programs {
		e := v1.ProgramState{BpfProgram: p.Name, UID: p.UID, Generation: p.Generation, Digest: digest, Program: a.Name, State: phase}
		if phase == v1.PhaseFailed {
			e.Reason, e.Message = v1.ReasonVerifierRejected, "R2 invalid mem access 'scalar'"
		}
		entries = append(entries, e)
	}
	state.Status.Programs = entries
	state.Status.Kernel = v1.KernelInfo{Release: release, BTF: true}
	if err := env.Client.Status().Update(ctx, state); err != nil {
		t.Fatalf("report node state %s: %v", node, err)
	}
}

func get(t testing.TB, name string) *v1.BpfProgram {
	t.Helper()
	p := &v1.BpfProgram{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitCondition waits until p's condition typ has status and reason for
// p's current generation, and returns p.
func waitCondition(t testing.TB, name, typ string, status metav1.ConditionStatus, reason string) *v1.BpfProgram {
	t.Helper()
	var p *v1.BpfProgram
	envtest.Eventually(t, 30*time.Second, func() error {
		p = get(t, name)
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != p.Generation {
			return fmt.Errorf("condition %s = %+v, want %s/%s at generation %d", typ, c, status, reason, p.Generation)
		}
		return nil
	})
	return p
}

// waitEvent waits for an Event about the named object with reason whose
// note contains text.
func waitEvent(t testing.TB, name, reason, text string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	envtest.Eventually(t, 30*time.Second, func() error {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list); err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name != name {
				continue
			}
			if e.Reason == reason && strings.Contains(e.Note, text) {
				found = e
				return nil
			}
			seen = append(seen, e.Reason+": "+e.Note)
		}
		return fmt.Errorf("no event %s %q about %s; have %q", reason, text, name, seen)
	})
	return found
}

// readyFleet runs name's bundle on n fresh nodes labelled name, each
// reporting it attached, and waits until the BpfProgram is Ready.
func readyFleet(t *testing.T, name string, n int) (names []string, p *v1.BpfProgram) {
	t.Helper()
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, name, reg, pub)
	names = nodes(t, name, n)
	ref, digest := testbundle.Push(t, reg, "ebpf/"+name, "v1", testbundle.Source{})
	sign(t, ref, priv)
	program(t, name, ref, name)
	p = waitCondition(t, name, v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	for _, node := range names {
		report(t, p, node, "6.18.0", digest, v1.PhaseAttached)
	}
	return names, waitCondition(t, name, v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
}

// setNodeReady writes node's Ready condition, as its kubelet (or the node
// lifecycle controller, for Unknown) would.
func setNodeReady(t *testing.T, node string, status corev1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status,
		Reason: "Test", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func TestHappyPath(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref, digest := testbundle.Push(t, reg, "ebpf/happy", "v1", testbundle.Source{})
	sign(t, ref, priv)
	trustPolicy(t, "happy", reg, pub)
	names := nodes(t, "happy", 3)
	program(t, "happy", ref, "happy")

	p := waitCondition(t, "happy", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	if p.Status.ResolvedDigest != digest || p.Status.ShortDigest != strings.TrimPrefix(digest, "sha256:")[:12] {
		t.Errorf("resolved %s (%s), want %s", p.Status.ResolvedDigest, p.Status.ShortDigest, digest)
	}
	if p.Status.ResolvedImage != reg.Repository("ebpf/happy") || p.Status.AttachTypes != "xdp,tracepoint" {
		t.Errorf("resolvedImage %q attachTypes %q", p.Status.ResolvedImage, p.Status.AttachTypes)
	}
	if !strings.Contains(p.Status.Signer, "happy") {
		t.Errorf("signer %q does not name the policy", p.Status.Signer)
	}
	waitEvent(t, "happy", v1.ReasonVerified, "")
	// The first rollout is in progress until every node reports.
	p = waitCondition(t, "happy", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonRolloutInProgress)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 3, Pending: 3, Summary: "0/3"}) {
		t.Errorf("nodes %+v before any report", p.Status.Nodes)
	}
	for _, n := range names {
		if got := rollout.DigestForNode(p, n); got != digest {
			t.Fatalf("node %s told to run %q, want %s", n, got, digest)
		}
	}

	// Agents report, one after the other; counts track them.
	report(t, p, names[0], "6.18.0", digest, v1.PhaseAttached)
	envtest.Eventually(t, 30*time.Second, func() error {
		if got := get(t, "happy").Status.Nodes.Summary; got != "1/3" {
			return fmt.Errorf("summary %q, want 1/3", got)
		}
		return nil
	})
	report(t, p, names[1], "6.18.0", digest, v1.PhaseAttached)
	report(t, p, names[2], "6.1.0", digest, v1.PhaseAttached)
	p = waitCondition(t, "happy", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 3, Attached: 3, Summary: "3/3"}) {
		t.Errorf("nodes %+v", p.Status.Nodes)
	}
	wantKernels := []v1.KernelCompatibility{{Release: "6.1.0", Attached: 1}, {Release: "6.18.0", Attached: 2}}
	if fmt.Sprint(p.Status.Kernels) != fmt.Sprint(wantKernels) {
		t.Errorf("kernels %+v, want %+v", p.Status.Kernels, wantKernels)
	}
	if !meta.IsStatusConditionTrue(p.Status.Conditions, v1.ConditionRolledOut) {
		t.Errorf("RolledOut not True: %+v", p.Status.Conditions)
	}

	// A node fails: Degraded, with the verifier's reason per kernel.
	report(t, p, names[2], "6.1.0", digest, v1.PhaseFailed)
	p = waitCondition(t, "happy", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonNodesFailed)
	if p.Status.Nodes.Failed != 1 || p.Status.Nodes.Attached != 2 {
		t.Errorf("nodes %+v", p.Status.Nodes)
	}
	if k := p.Status.Kernels[0]; k.Release != "6.1.0" || k.Failed != 1 || !strings.Contains(k.FirstFailure, v1.ReasonVerifierRejected) {
		t.Errorf("kernel 6.1.0 %+v", k)
	}
	waitEvent(t, "happy", v1.ReasonNodesFailed, names[2])
}

func TestRefusedBundles(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	otherPriv, _ := keyPair(t)
	trustPolicy(t, "refused", reg, pub)
	names := nodes(t, "refused", 1)

	signedRef, _ := testbundle.Push(t, reg, "ebpf/signed", "v1", testbundle.Source{})
	sign(t, signedRef, priv)
	unsignedRef, _ := testbundle.Push(t, reg, "ebpf/unsigned", "v1", testbundle.Source{Return: 1})
	wrongKeyRef, _ := testbundle.Push(t, reg, "ebpf/wrongkey", "v1", testbundle.Source{Return: 3})
	sign(t, wrongKeyRef, otherPriv)
	tamperedRef, tamperedDigest := testbundle.Push(t, reg, "ebpf/tampered", "v1", testbundle.Source{Return: 4})
	sign(t, tamperedRef, priv)
	tamperConfig(t, reg, tamperedRef, tamperedDigest)
	otherReg := registry.Start(t, registry.Options{})
	uncoveredRef, _ := testbundle.Push(t, otherReg, "ebpf/uncovered", "v1", testbundle.Source{})

	tests := []struct {
		name  string
		image string
		// mutate changes the spec away from the test bundle's.
		mutate func(*v1.BpfProgram)
		// condition and reason are the condition that turns False.
		condition, reason string
	}{
		{name: "unsigned", image: unsignedRef, condition: v1.ConditionSignatureVerified, reason: v1.ReasonUnsigned},
		{name: "wrong-key", image: wrongKeyRef, condition: v1.ConditionSignatureVerified, reason: v1.ReasonSignatureMismatch},
		{name: "no-policy", image: uncoveredRef, condition: v1.ConditionSignatureVerified, reason: v1.ReasonNoTrustPolicy},
		{name: "tampered", image: tamperedRef, condition: v1.ConditionBundleResolved, reason: v1.ReasonBundleInvalid},
		{name: "program-missing", image: signedRef, condition: v1.ConditionBundleResolved, reason: v1.ReasonProgramNotInBundle,
			mutate: func(p *v1.BpfProgram) { p.Spec.Programs[1].Name = "not_in_bundle" }},
		{name: "attach-mismatch", image: signedRef, condition: v1.ConditionBundleResolved, reason: v1.ReasonAttachMismatch,
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].TC = &v1.TCAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}, Direction: v1.TCIngress}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "refused-" + tt.name
			var mutate []func(*v1.BpfProgram)
			if tt.mutate != nil {
				mutate = append(mutate, tt.mutate)
			}
			program(t, name, tt.image, "refused", mutate...)
			p := waitCondition(t, name, tt.condition, metav1.ConditionFalse, tt.reason)
			if p.Status.Rollout != nil {
				t.Errorf("rollout %+v for a refused bundle", p.Status.Rollout)
			}
			if got := rollout.DigestForNode(p, names[0]); got != "" {
				t.Errorf("node told to run %s", got)
			}
			ready := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady)
			if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != tt.reason {
				t.Errorf("Ready %+v, want False/%s", ready, tt.reason)
			}
			waitEvent(t, name, tt.reason, "")
		})
	}

	// A refused update leaves the verified digest running.
	t.Run("refused-update-keeps-old", func(t *testing.T) {
		p := program(t, "refused-update", signedRef, "refused")
		p = waitCondition(t, p.Name, v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
		old := p.Status.ResolvedDigest
		report(t, p, names[0], "6.18.0", old, v1.PhaseAttached)
		waitCondition(t, p.Name, v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

		p = mutate(t, p.Name, func(q *v1.BpfProgram) { q.Spec.Bundle.Image = unsignedRef })
		p = waitCondition(t, p.Name, v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonUnsigned)
		if got := rollout.DigestForNode(p, names[0]); got != old {
			t.Errorf("node told to run %q after a refused update, want the old %s", got, old)
		}
		if p.Status.Nodes.Attached != 1 {
			t.Errorf("nodes %+v: the old digest still runs", p.Status.Nodes)
		}
		waitCondition(t, p.Name, v1.ConditionReady, metav1.ConditionFalse, v1.ReasonUnsigned)
	})
}

// tamperConfig replaces the config blob (the manifest the operator reads)
// of the bundle ref@digest in reg.
func tamperConfig(t testing.TB, reg *registry.Registry, ref, digest string) {
	t.Helper()
	r, err := remote.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	b, err := remote.New(remote.Options{PlainHTTP: true}).Fetch(context.Background(), r.Repository, digest)
	if err != nil {
		t.Fatalf("fetch %s: %v", ref, err)
	}
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		t.Fatal(err)
	}
	reg.TamperBlob(t, im.Config.Digest.String(), []byte(`{"name":"not the signed manifest"}`))
}

func TestTagMovedKeepsRecordedDigest(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, "moved", reg, pub)
	names := nodes(t, "moved", 2)
	ref, d1 := testbundle.Push(t, reg, "ebpf/moved", "stable", testbundle.Source{})
	sign(t, ref, priv)
	program(t, "moved", ref, "moved")
	p := waitCondition(t, "moved", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	for _, n := range names {
		report(t, p, n, "6.18.0", d1, v1.PhaseAttached)
	}
	waitCondition(t, "moved", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

	// The tag moves; a node report wakes the reconciler, which keeps d1.
	_, d2 := testbundle.Push(t, reg, "ebpf/moved", "stable", testbundle.Source{Return: 1})
	sign(t, ref, priv)
	if d1 == d2 {
		t.Fatal("the second push has the same digest")
	}
	report(t, p, names[0], "6.18.1", d1, v1.PhaseAttached)
	envtest.Eventually(t, 30*time.Second, func() error {
		if k := get(t, "moved").Status.Kernels; len(k) != 2 {
			return fmt.Errorf("kernels %+v: the report was not summed yet", k)
		}
		return nil
	})
	p = get(t, "moved")
	if p.Status.ResolvedDigest != d1 || rollout.DigestForNode(p, names[1]) != d1 {
		t.Fatalf("resolved %s, node runs %s after the tag moved; want %s kept", p.Status.ResolvedDigest, rollout.DigestForNode(p, names[1]), d1)
	}

	// The resolve annotation picks up d2 and starts a rollout; it is removed.
	p = mutate(t, p.Name, func(q *v1.BpfProgram) {
		if q.Annotations == nil {
			q.Annotations = map[string]string{}
		}
		q.Annotations[v1.ResolveAnnotation] = "now"
	})
	envtest.Eventually(t, 30*time.Second, func() error {
		p = get(t, "moved")
		if p.Status.ResolvedDigest != d2 {
			return fmt.Errorf("resolved %s, want %s", p.Status.ResolvedDigest, d2)
		}
		if _, ok := p.Annotations[v1.ResolveAnnotation]; ok {
			return fmt.Errorf("resolve annotation still set")
		}
		if r := p.Status.Rollout; r == nil || r.TargetDigest != d2 || r.StableDigest != d1 {
			return fmt.Errorf("rollout %+v, want %s from %s", r, d2, d1)
		}
		return nil
	})
	for _, n := range names {
		if got := rollout.DigestForNode(p, n); got != d2 {
			t.Errorf("node %s runs %s, want %s (AllAtOnce)", n, got, d2)
		}
	}
	waitEvent(t, "moved", "RolloutStarted", strings.TrimPrefix(d2, "sha256:")[:12])
}

func TestWaves(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref1, d1 := testbundle.Push(t, reg, "ebpf/waves", "v1", testbundle.Source{})
	sign(t, ref1, priv)
	ref2, d2 := testbundle.Push(t, reg, "ebpf/waves", "v2", testbundle.Source{Return: 1})
	sign(t, ref2, priv)
	waves := []int32{10, 50, 100}
	// The program comes first, refused for want of a trust policy, so its
	// uid is known: the 20 nodes are picked to fill the waves as
	// percentages say (2, 8, 10), since a random 20 leaves wave 0 empty one
	// time in eight.
	p := program(t, "waves", ref1, "waves", func(p *v1.BpfProgram) {
		p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: waves, PauseSeconds: 600, MaxFailedNodes: 0}
	})
	waitCondition(t, "waves", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonNoTrustPolicy)
	waveOf := map[string]int32{}
	var names []string
	want := []int{2, 8, 10}
	for i := 0; len(names) < 20; i++ {
		n := fmt.Sprintf("waves-%03d", i)
		w := rollout.WaveOf(rollout.Bucket(n, p.UID), waves)
		if want[w] > 0 {
			want[w]--
			waveOf[n] = w
			names = append(names, n)
		}
	}
	for _, n := range names {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"bpfleet.io/test": "waves"}}}
		create(t, node)
		t.Cleanup(func() {
			_ = env.Client.Delete(context.Background(), &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: n}})
		})
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		if n := get(t, "waves").Status.Nodes.Selected; n != 20 {
			return fmt.Errorf("%d nodes selected, want 20", n)
		}
		return nil
	})
	// The policy admits the bundle: the first rollout starts.
	trustPolicy(t, "waves", reg, pub)

	// agents plays every agent once: each node runs what DigestForNode says,
	// and fails digest failing (if set) when in wave failWave.
	agents := func(p *v1.BpfProgram, failing string, failWave int32) {
		for _, n := range names {
			d := rollout.DigestForNode(p, n)
			if d == "" {
				continue
			}
			phase := v1.PhaseAttached
			if d == failing && waveOf[n] == failWave {
				phase = v1.PhaseFailed
			}
			report(t, p, n, "6.18.0", d, phase)
		}
	}
	// checkMembership asserts that exactly the nodes of waves 0..wave run target.
	checkMembership := func(p *v1.BpfProgram, target, other string) {
		t.Helper()
		r := p.Status.Rollout
		for _, n := range names {
			want := other
			if waveOf[n] <= r.Wave {
				want = target
			}
			if got := rollout.DigestForNode(p, n); got != want {
				t.Fatalf("wave %d in progress: node %s (wave %d) runs %q, want %q", r.Wave, n, waveOf[n], got, want)
			}
		}
	}
	waitWave := func(wave int32, reason string) *v1.BpfProgram {
		t.Helper()
		var p *v1.BpfProgram
		envtest.Eventually(t, 30*time.Second, func() error {
			p = get(t, "waves")
			c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionRolledOut)
			if p.Status.Rollout == nil || p.Status.Rollout.Wave != wave || c == nil || c.Reason != reason {
				return fmt.Errorf("rollout %+v RolledOut %+v, want wave %d %s", p.Status.Rollout, c, wave, reason)
			}
			return nil
		})
		return p
	}
	// poke steps the clock past the pause and wakes the reconciler.
	poke := func() {
		t.Helper()
		clock.Step(601 * time.Second)
		mutate(t, "waves", func(q *v1.BpfProgram) {
			if q.Annotations == nil {
				q.Annotations = map[string]string{}
			}
			q.Annotations["test.bpfleet.io/poke"] = clock.Now().String()
		})
	}

	// First rollout: no stable digest, nodes outside the wave run nothing.
	p = waitWave(0, v1.ReasonRolloutInProgress)
	checkMembership(p, d1, "")
	for wave := range int32(3) {
		agents(p, "", -1)
		if wave < 2 {
			p = waitWave(wave, v1.ReasonRolloutPaused)
			checkMembership(p, d1, "")
			poke()
			p = waitWave(wave+1, v1.ReasonRolloutInProgress)
			checkMembership(p, d1, "")
		}
	}
	p = waitWave(2, v1.ReasonRolloutComplete)
	if p.Status.Rollout.StableDigest != d1 || p.Status.Rollout.UpdatedNodes != 20 {
		t.Fatalf("rollout %+v after the last wave", p.Status.Rollout)
	}
	waitCondition(t, "waves", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
	waitEvent(t, "waves", "WaveCompleted", "wave 1 of 3")

	// Second digest: wave 0 takes it, wave 1 fails it, the rollout halts and
	// every node returns to d1.
	p = mutate(t, "waves", func(q *v1.BpfProgram) { q.Spec.Bundle.Image = ref2 })
	envtest.Eventually(t, 30*time.Second, func() error {
		p = get(t, "waves")
		if r := p.Status.Rollout; r == nil || r.TargetDigest != d2 || r.StableDigest != d1 || r.Wave != 0 {
			return fmt.Errorf("rollout %+v, want wave 0 of %s from %s", r, d2, d1)
		}
		return nil
	})
	checkMembership(p, d2, d1)
	agents(p, d2, 1)
	p = waitWave(0, v1.ReasonRolloutPaused)
	poke()
	p = waitWave(1, v1.ReasonRolloutInProgress)
	checkMembership(p, d2, d1)
	agents(p, d2, 1)
	p = waitWave(1, v1.ReasonRolledBack)
	r := p.Status.Rollout
	if r.HaltedReason == "" || len(r.FailedNodes) == 0 {
		t.Fatalf("halted rollout %+v lacks reason or failed nodes", r)
	}
	for _, n := range r.FailedNodes {
		if waveOf[n] != 1 {
			t.Errorf("failed node %s is in wave %d, not 1", n, waveOf[n])
		}
	}
	for _, n := range names {
		if got := rollout.DigestForNode(p, n); got != d1 {
			t.Errorf("node %s runs %s after the rollback, want %s", n, got, d1)
		}
	}
	waitEvent(t, "waves", "RolloutHalted", r.FailedNodes[0])
	waitEvent(t, "waves", v1.ReasonRolledBack, strings.TrimPrefix(d1, "sha256:")[:12])
	waitCondition(t, "waves", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonRolloutHalted)
}

func TestNodeDeletedCollectsItsState(t *testing.T) {
	startOperator(t)
	names, _ := readyFleet(t, "gc", 2)

	if err := env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: names[1]}}); err != nil {
		t.Fatal(err)
	}
	envtest.Eventually(t, 30*time.Second, func() error {
		err := env.Client.Get(context.Background(), client.ObjectKey{Name: names[1]}, &v1.BpfNodeState{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("node state of the deleted node: %v", err)
		}
		return nil
	})
	envtest.Eventually(t, 30*time.Second, func() error {
		if n := get(t, "gc").Status.Nodes; n != (v1.NodeCounts{Selected: 1, Attached: 1, Summary: "1/1"}) {
			return fmt.Errorf("nodes %+v", n)
		}
		return nil
	})
	// The state of the node that stays is kept.
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: names[0]}, &v1.BpfNodeState{}); err != nil {
		t.Fatalf("node state of a live node: %v", err)
	}
}

// A node whose kubelet stops reporting (Ready Unknown) counts as pending,
// whatever its BpfNodeState last said, and as attached again once Ready.
func TestNotReadyNodeCountsPending(t *testing.T) {
	startOperator(t)
	names, _ := readyFleet(t, "notready", 2)
	setNodeReady(t, names[1], corev1.ConditionUnknown)
	p := waitCondition(t, "notready", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonNodesPending)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 2, Attached: 1, Pending: 1, Summary: "1/2"}) {
		t.Errorf("nodes %+v with one node not ready", p.Status.Nodes)
	}
	setNodeReady(t, names[1], corev1.ConditionTrue)
	p = waitCondition(t, "notready", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
	if p.Status.Nodes != (v1.NodeCounts{Selected: 2, Attached: 2, Summary: "2/2"}) {
		t.Errorf("nodes %+v once ready again", p.Status.Nodes)
	}
}

func TestTrimNode(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", UID: "u", ResourceVersion: "7", Labels: map[string]string{"a": "b"},
			Annotations: map[string]string{"big": strings.Repeat("x", 4096)}, Finalizers: []string{"f"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
				{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", LastHeartbeatTime: metav1.Now()}},
			Images: []corev1.ContainerImage{{Names: []string{"registry/image:tag"}, SizeBytes: 1 << 30}},
		},
	}
	got, err := operator.TrimNode(n)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := got.(*corev1.Node)
	if trimmed.Name != "n" || trimmed.UID != "u" || trimmed.ResourceVersion != "7" || trimmed.Labels["a"] != "b" || len(trimmed.Finalizers) != 1 {
		t.Errorf("metadata lost: %+v", trimmed.ObjectMeta)
	}
	if trimmed.Annotations != nil || trimmed.ManagedFields != nil || trimmed.Status.Images != nil {
		t.Errorf("kept what no reconciler reads: %+v", trimmed)
	}
	if len(trimmed.Status.Conditions) != 1 || trimmed.Status.Conditions[0].Type != corev1.NodeReady ||
		trimmed.Status.Conditions[0].Status != corev1.ConditionFalse || !trimmed.Status.Conditions[0].LastHeartbeatTime.IsZero() {
		t.Errorf("conditions %+v, want Ready=False alone without its heartbeat", trimmed.Status.Conditions)
	}
	if other, _ := operator.TrimNode("tombstone"); other != "tombstone" {
		t.Errorf("a non-Node changed: %v", other)
	}
}

func TestTrustPolicyStatus(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	_, pub := keyPair(t)
	_, pub2 := keyPair(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "team-key", Namespace: trust.DefaultSecretNamespace},
		Data:       map[string][]byte{"cosign.pub": []byte(pub2)},
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: trust.DefaultSecretNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	create(t, secret)
	reg := registry.Start(t, registry.Options{})
	pol := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "keys"},
		Spec: v1.BundleTrustPolicySpec{
			Images: []string{reg.Host + "/policy/*"},
			Keys: []v1.TrustedKey{
				{Name: "inline", PublicKey: pub},
				{Name: "from-secret", SecretRef: &v1.SecretKeyRef{Namespace: trust.DefaultSecretNamespace, Name: "team-key", Key: "cosign.pub"}},
			},
		},
	}
	create(t, pol)
	program(t, "covered", reg.Ref("policy/a", "v1"), "nobody")
	program(t, "not-covered", reg.Ref("elsewhere/a", "v1"), "nobody")

	waitPolicy := func(check func(*v1.BundleTrustPolicy) error) *v1.BundleTrustPolicy {
		t.Helper()
		got := &v1.BundleTrustPolicy{}
		envtest.Eventually(t, 30*time.Second, func() error {
			if err := env.Client.Get(ctx, client.ObjectKey{Name: "keys"}, got); err != nil {
				return err
			}
			if got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("status of generation %d, want %d", got.Status.ObservedGeneration, got.Generation)
			}
			return check(got)
		})
		return got
	}
	got := waitPolicy(func(p *v1.BundleTrustPolicy) error {
		if !meta.IsStatusConditionTrue(p.Status.Conditions, v1.ConditionReady) || p.Status.KeyCount != 2 || p.Status.CoveredPrograms != 1 {
			return fmt.Errorf("status %+v", p.Status)
		}
		return nil
	})
	fp, err := signing.Fingerprint([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.KeyFingerprints) != 2 || got.Status.KeyFingerprints[0] != "inline "+fp {
		t.Errorf("fingerprints %q, want inline %s first", got.Status.KeyFingerprints, fp)
	}

	// A key that does not parse: Ready False KeyInvalid naming it.
	got.Spec.Keys[0].PublicKey = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitPolicy(func(p *v1.BundleTrustPolicy) error {
		c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady)
		if c == nil || c.Reason != v1.ReasonKeyInvalid || !strings.Contains(c.Message, "inline") || p.Status.KeyCount != 1 {
			return fmt.Errorf("Ready %+v keyCount %d", c, p.Status.KeyCount)
		}
		return nil
	})

	// allowUnsigned is loud: a condition and a Warning Event.
	got = &v1.BundleTrustPolicy{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "keys"}, got); err != nil {
		t.Fatal(err)
	}
	got.Spec.AllowUnsigned = true
	got.Spec.Keys[0].PublicKey = pub
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitPolicy(func(p *v1.BundleTrustPolicy) error {
		if !meta.IsStatusConditionTrue(p.Status.Conditions, v1.ConditionUnsignedAllowed) {
			return fmt.Errorf("conditions %+v", p.Status.Conditions)
		}
		return nil
	})
	ev := waitEvent(t, "keys", v1.ReasonUnsignedAllowed, "UNSIGNED")
	if ev.Type != corev1.EventTypeWarning {
		t.Errorf("event type %s, want Warning", ev.Type)
	}
}

func TestRegistryOutageChangesNothingForNodes(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, "outage", reg, pub)
	names := nodes(t, "outage", 1)
	ref, digest := testbundle.Push(t, reg, "ebpf/outage", "v1", testbundle.Source{})
	sign(t, ref, priv)
	program(t, "outage", ref, "outage", func(p *v1.BpfProgram) { p.Spec.Bundle.PullPolicy = v1.PullAlways })
	p := waitCondition(t, "outage", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	report(t, p, names[0], "6.18.0", digest, v1.PhaseAttached)
	waitCondition(t, "outage", v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)

	// The registry goes away; the next resolve (a node report wakes the
	// reconciler, pullPolicy Always resolves each time) fails.
	reg.Stop()
	report(t, p, names[0], "6.18.1", digest, v1.PhaseAttached)
	p = waitCondition(t, "outage", v1.ConditionBundleResolved, metav1.ConditionFalse, v1.ReasonRegistryUnavailable)
	if got := rollout.DigestForNode(p, names[0]); got != digest {
		t.Errorf("node told to run %q during the outage, want %s", got, digest)
	}
	if p.Status.ResolvedDigest != digest {
		t.Errorf("resolved digest %s changed during the outage", p.Status.ResolvedDigest)
	}
	// Written by the same reconcile that saw the outage.
	if c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady); c == nil || c.Reason != v1.ReasonAllAttached {
		t.Errorf("Ready %+v during the outage, want True/AllAttached: what runs keeps running", c)
	}
	waitEvent(t, "outage", v1.ReasonRegistryUnavailable, "")
}

// A trust policy change wakes the BpfPrograms it covers, which verify again.
func TestPolicyChangeVerifiesAgain(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	reg := registry.Start(t, registry.Options{})
	_, pub := keyPair(t)
	pol := trustPolicy(t, "change", reg, pub)
	names := nodes(t, "change", 1)
	ref, digest := testbundle.Push(t, reg, "ebpf/change", "v1", testbundle.Source{})
	program(t, "change", ref, "change")
	waitCondition(t, "change", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonUnsigned)

	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pol), pol); err != nil {
		t.Fatal(err)
	}
	pol.Spec.AllowUnsigned = true
	if err := env.Client.Update(ctx, pol); err != nil {
		t.Fatal(err)
	}
	p := waitCondition(t, "change", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonUnsignedAllowed)
	if got := rollout.DigestForNode(p, names[0]); got != digest {
		t.Errorf("node told to run %q, want %s admitted by allowUnsigned", got, digest)
	}
	if !strings.Contains(p.Status.Signer, "change") {
		t.Errorf("signer %q does not name the policy", p.Status.Signer)
	}
	waitEvent(t, "change", v1.ReasonUnsignedAllowed, "without a valid signature")
}

// At steady state the BpfProgram does not change: an agent's stats refresh
// and a Node heartbeat leave its status (and so its resourceVersion, which
// every watcher of it would see move) as it was.
func TestSteadyStateWritesNothing(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	names, _ := readyFleet(t, "steady", 2)
	// The reconciles the reports queued (delayed by NodeStateDelay) may
	// still run: they must not write either, so no settling is needed.
	before := get(t, "steady").ResourceVersion

	// An agent's stats refresh: run counts change, nothing the operator sums.
	state := &v1.BpfNodeState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: names[0]}, state); err != nil {
		t.Fatal(err)
	}
	for i := range state.Status.Programs {
		state.Status.Programs[i].RunCount += 1000
		state.Status.Programs[i].RunTimeNs += 15000
	}
	reconciled, _ := bpfProgramReconciles(t)
	if err := env.Client.Status().Update(ctx, state); err != nil {
		t.Fatal(err)
	}
	// A kubelet heartbeat: no readiness change, so it wakes no reconcile;
	// had it, that reconcile was queued at once and runs before the one the
	// stats refresh queued (NodeStateDelay later).
	setNodeReady(t, names[1], corev1.ConditionTrue)
	// Wait for the reconcile the stats refresh causes, not for a time.
	waitReconciles(t, reconciled, 1)
	if after := get(t, "steady"); after.ResourceVersion != before {
		t.Fatalf("the BpfProgram was written (resourceVersion %s -> %s) with nothing to change; status %+v",
			before, after.ResourceVersion, after.Status)
	}
}

// bpfProgramReconciles returns how many reconciles the bpfprogram
// controller has finished, and whether it is idle: nothing in its queue and
// no reconcile running (controller-runtime's own metrics).
func bpfProgramReconciles(t *testing.T) (done float64, idle bool) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	busy := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case f.GetName() == "controller_runtime_reconcile_total" && label(m, "controller") == "bpfprogram":
				done += m.GetCounter().GetValue()
			case f.GetName() == "workqueue_depth" && label(m, "name") == "bpfprogram",
				f.GetName() == "controller_runtime_active_workers" && label(m, "controller") == "bpfprogram":
				busy += m.GetGauge().GetValue()
			}
		}
	}
	return done, busy == 0
}

// waitReconciles waits until the bpfprogram controller has finished at least
// n reconciles more than since (a count bpfProgramReconciles returned) and
// is idle. Nothing else
// reconciles BpfPrograms in this package while a test waits (no parallel
// tests, no requeue shorter than a test), so those are the test's own.
func waitReconciles(t *testing.T, since float64, n int) {
	t.Helper()
	envtest.Eventually(t, 30*time.Second, func() error {
		done, idle := bpfProgramReconciles(t)
		if done < since+float64(n) || !idle {
			return fmt.Errorf("%v reconciles since, want %d, idle %v", done-since, n, idle)
		}
		return nil
	})
}

// A policy's program type allow-list refuses a bundle carrying other types.
func TestProgramTypeDenied(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	pol := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "xdp-only"},
		Spec: v1.BundleTrustPolicySpec{
			Images:              []string{reg.Host + "/*/*"},
			Keys:                []v1.TrustedKey{{Name: "test-key", PublicKey: pub}},
			AllowedProgramTypes: []string{"xdp"},
		},
	}
	create(t, pol)
	names := nodes(t, "denied", 1)
	ref, _ := testbundle.Push(t, reg, "ebpf/denied", "v1", testbundle.Source{})
	sign(t, ref, priv)
	program(t, "denied", ref, "denied")
	p := waitCondition(t, "denied", v1.ConditionSignatureVerified, metav1.ConditionFalse, v1.ReasonProgramTypeDenied)
	if c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionSignatureVerified); !strings.Contains(c.Message, "tracepoint") {
		t.Errorf("message %q does not name the denied type", c.Message)
	}
	if got := rollout.DigestForNode(p, names[0]); got != "" {
		t.Errorf("node told to run %s", got)
	}
	waitEvent(t, "denied", v1.ReasonProgramTypeDenied, "")
}

// parallel runs f for every name on 8 workers and fails on the first error.
func parallel(tb testing.TB, names []string, f func(name string) error) {
	tb.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		work = make(chan string)
	)
	for range 8 {
		wg.Go(func() {
			for n := range work {
				if err := f(n); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		tb.Fatalf("%d failures, first: %v", len(errs), errs[0])
	}
}

// BenchmarkConvergence500 measures, for 500 simulated agents reporting a
// digest attached at once, the time until the BpfProgram says Ready and how
// many times its status was written (node reports coalesce in the work
// queue: far fewer writes than reports). Run with -bench Convergence -benchtime 1x.
func BenchmarkConvergence500(b *testing.B) {
	const fleet = 500
	ctx := context.Background()
	startOperator(b)
	reg := registry.Start(b, registry.Options{})
	priv, pub := keyPair(b)
	trustPolicy(b, "scale", reg, pub)
	ref, digest := testbundle.Push(b, reg, "ebpf/scale", "v1", testbundle.Source{})
	sign(b, ref, priv)
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("scale%d", i)
		var names []string
		for j := range fleet {
			names = append(names, fmt.Sprintf("%s-%04d", prefix, j))
		}
		parallel(b, names, func(n string) error {
			return env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"bpfleet.io/test": prefix}}})
		})
		p := program(b, prefix, ref, prefix)
		waitCondition(b, prefix, v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
		envtest.Eventually(b, time.Minute, func() error {
			if n := get(b, prefix).Status.Nodes.Selected; n != fleet {
				return fmt.Errorf("%d nodes selected", n)
			}
			return nil
		})
		p = get(b, prefix)
		w, err := wc.Watch(ctx, &v1.BpfProgramList{}, client.MatchingFields{"metadata.name": prefix})
		if err != nil {
			b.Fatal(err)
		}
		writes := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range w.ResultChan() {
				writes++
			}
		}()
		b.ResetTimer()
		start := time.Now()
		parallel(b, names, func(n string) error {
			state := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: n}}
			if err := env.Client.Create(ctx, state); err != nil {
				return err
			}
			for _, a := range p.Spec.Programs {
				state.Status.Programs = append(state.Status.Programs, v1.ProgramState{
					BpfProgram: p.Name, UID: p.UID, Digest: digest, Program: a.Name, State: v1.PhaseAttached})
			}
			state.Status.Kernel = v1.KernelInfo{Release: "6.18.0", BTF: true}
			return env.Client.Status().Update(ctx, state)
		})
		reported := time.Since(start)
		waitCondition(b, prefix, v1.ConditionReady, metav1.ConditionTrue, v1.ReasonAllAttached)
		converged := time.Since(start)
		b.StopTimer()
		w.Stop()
		<-done
		b.ReportMetric(reported.Seconds(), "s-reports")
		b.ReportMetric(converged.Seconds(), "s-to-ready")
		b.ReportMetric(float64(writes), "program-writes")
		parallel(b, names, func(n string) error {
			return client.IgnoreNotFound(env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}))
		})
		// The node-state garbage collector removes the 500 states.
		envtest.Eventually(b, 2*time.Minute, func() error {
			var states v1.BpfNodeStateList
			if err := env.Client.List(ctx, &states); err != nil {
				return err
			}
			for _, s := range states.Items {
				if strings.HasPrefix(s.Name, prefix+"-") {
					return fmt.Errorf("node state %s not collected", s.Name)
				}
			}
			return nil
		})
	}
}

// TestKernelPausedDuringRollout rolls a second digest over nodes of two
// kernel releases; the digest fails on one of them. That release is paused
// on the stable digest (every node of it, whatever its wave) while the nodes
// of the other release complete every wave, and maxFailedNodes 0 does not
// halt the rollout for it.
func TestKernelPausedDuringRollout(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	ref1, d1 := testbundle.Push(t, reg, "ebpf/kpause", "v1", testbundle.Source{})
	sign(t, ref1, priv)
	ref2, d2 := testbundle.Push(t, reg, "ebpf/kpause", "v2", testbundle.Source{Return: 1})
	sign(t, ref2, priv)
	trustPolicy(t, "kpause", reg, pub)
	const newKernel, oldKernel = "6.18.0", "5.10.0"
	names := nodes(t, "kpause", 20)
	release := map[string]string{}
	for i, n := range names {
		release[n] = newKernel
		if i%2 == 1 {
			release[n] = oldKernel
		}
	}
	program(t, "kpause", ref1, "kpause", func(p *v1.BpfProgram) {
		p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: []int32{10, 50, 100}, MaxFailedNodes: 0}
	})

	// play runs every agent until the RolledOut condition has reason: each
	// node runs what DigestForNodeKernel says for its release, and digest
	// d2 fails on oldKernel. A node writes only when its answer changed.
	reported := map[string]string{}
	play := func(reason string) *v1.BpfProgram {
		t.Helper()
		var p *v1.BpfProgram
		envtest.Eventually(t, 60*time.Second, func() error {
			p = get(t, "kpause")
			for _, n := range names {
				d := rollout.DigestForNodeKernel(p, n, release[n])
				if d == "" || reported[n] == d {
					continue
				}
				phase := v1.PhaseAttached
				if d == d2 && release[n] == oldKernel {
					phase = v1.PhaseFailed
				}
				report(t, p, n, release[n], d, phase)
				reported[n] = d
			}
			c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionRolledOut)
			if c == nil || c.Reason != reason {
				return fmt.Errorf("RolledOut %+v rollout %+v, want reason %s", c, p.Status.Rollout, reason)
			}
			return nil
		})
		return p
	}
	p := play(v1.ReasonRolloutComplete)
	if r := p.Status.Rollout; r.StableDigest != d1 || r.UpdatedNodes != 20 {
		t.Fatalf("first rollout %+v", r)
	}

	mutate(t, p.Name, func(q *v1.BpfProgram) { q.Spec.Bundle.Image = ref2 })
	p = play(v1.ReasonKernelsPaused)
	r := p.Status.Rollout
	if r.HaltedReason != "" || r.TargetDigest != d2 || r.StableDigest != d1 || r.Wave != 2 {
		t.Fatalf("rollout %+v, want every wave of %s done, stable %s, not halted", r, d2, d1)
	}
	if len(r.PausedKernels) != 1 || r.PausedKernels[0].Release != oldKernel || release[r.PausedKernels[0].Node] != oldKernel ||
		!strings.Contains(r.PausedKernels[0].Reason, v1.ReasonVerifierRejected) {
		t.Fatalf("paused kernels %+v, want %s only, with the failure", r.PausedKernels, oldKernel)
	}
	for _, n := range names {
		want := d2
		if release[n] == oldKernel {
			want = d1
		}
		if got := rollout.DigestForNodeKernel(p, n, release[n]); got != want {
			t.Errorf("node %s (%s, wave %d) runs %s, want %s", n, release[n], rollout.NodeWave(p, n), got, want)
		}
	}
	// The fleet view: every node runs what it must, and the matrix keeps
	// what the paused release taught.
	envtest.Eventually(t, 30*time.Second, func() error {
		p = get(t, "kpause")
		if p.Status.Nodes.Attached != 20 || p.Status.Nodes.Failed != 0 {
			return fmt.Errorf("nodes %+v, want 20 attached", p.Status.Nodes)
		}
		return nil
	})
	if k := p.Status.Kernels; len(k) != 2 || k[0].Release != oldKernel || k[0].Attached != 10 ||
		!strings.HasPrefix(k[0].FirstFailure, "paused: ") || k[1].Release != newKernel || k[1].Attached != 10 || k[1].FirstFailure != "" {
		t.Errorf("kernels %+v", k)
	}
	waitCondition(t, "kpause", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonKernelsPaused)
	waitCondition(t, "kpause", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonKernelsPaused)
	waitEvent(t, "kpause", "KernelPaused", oldKernel)
}

// mutate applies fn to the latest BpfProgram and updates it, retrying when
// the operator wrote the object in between (a status patch or an annotation).
func mutate(t *testing.T, name string, fn func(*v1.BpfProgram)) *v1.BpfProgram {
	t.Helper()
	var p *v1.BpfProgram
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p = get(t, name)
		fn(p)
		return env.Client.Update(context.Background(), p)
	})
	if err != nil {
		t.Fatalf("update %s: %v", name, err)
	}
	return p
}

// TestInvalidNodeSelectorDegrades: a nodeSelector that cannot be evaluated
// (admitted by an older CRD) marks the BpfProgram Degraded with reason
// InvalidNodeSelector, leaves its rollout as it was, and clears once fixed.
func TestInvalidNodeSelectorDegrades(t *testing.T) {
	startOperator(t)
	_, p := readyFleet(t, "badsel", 1)
	rollout := p.Status.Rollout.DeepCopy()
	env.WithoutRules(t, "bpfprograms.bpfleet.io", "spec.nodeSelector")
	valid := p.Spec.NodeSelector.DeepCopy()
	envtest.Eventually(t, 10*time.Second, func() error {
		p = get(t, "badsel")
		p.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}
		return env.Client.Update(context.Background(), p)
	})
	p = waitCondition(t, "badsel", v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonInvalidNodeSelector)
	if !equality.Semantic.DeepEqual(p.Status.Rollout, rollout) {
		t.Errorf("rollout moved under an invalid selector:\nbefore %+v\nafter  %+v", rollout, p.Status.Rollout)
	}
	// The operator writes the object too (its finalizer): retry on a
	// conflict with the latest version.
	envtest.Eventually(t, 10*time.Second, func() error {
		p = get(t, "badsel")
		p.Spec.NodeSelector = valid
		return env.Client.Update(context.Background(), p)
	})
	waitCondition(t, "badsel", v1.ConditionDegraded, metav1.ConditionFalse, v1.ReasonNoFailures)
}
