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

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

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
