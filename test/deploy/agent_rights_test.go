package deploy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestAgentRightsAreNarrow impersonates the agent's service account (with
// its bound token's node name) against config/rbac as shipped, and checks
// each grant the agent holds is enough for what it does and no wider:
//   - BpfNodeStates: create its own and write its status, never update or
//     patch the object itself;
//   - Events: through the same events.k8s.io recorder the agent uses, about
//     its own BpfNodeState only, in no other namespace and about no other
//     object, and never through the core API;
//   - Nodes: read, never write.
func TestAgentRightsAreNarrow(t *testing.T) {
	ensureNamespace(t)
	ctx := context.Background()
	if out, err := env.Kubectl(ctx, "apply", "-k", configDir(t, "rbac")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	const node, other = "rights-a", "rights-b"
	extra := map[string][]string{nodeExtra: {node}}
	agent := impersonate(t, agentSA, saGroups(), extra)

	// The policies apply a moment after config/rbac does.
	waitRefused(t, "create another node's state", refusedOwnNode, func() error {
		return agent.Create(ctx, &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: other}})
	}, func() { _ = env.Client.Delete(ctx, &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: other}}) })

	t.Run("node state: create and status only", func(t *testing.T) {
		own := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node}}
		if err := agent.Create(ctx, own); err != nil {
			t.Fatalf("agent may not create its own state: %v", err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, own) })
		own.Status.Kernel.Release = "6.18.0"
		if err := agent.Status().Update(ctx, own); err != nil {
			t.Fatalf("agent may not update its own status: %v", err)
		}
		if err := agent.Status().Patch(ctx, own, client.RawPatch(types.MergePatchType, []byte(`{"status":{"kernel":{"release":"6.18.1"}}}`))); err != nil {
			t.Fatalf("agent may not patch its own status: %v", err)
		}
		changed := own.DeepCopy()
		changed.Labels = map[string]string{"forged": "true"}
		if err := agent.Update(ctx, changed); !apierrors.IsForbidden(err) {
			t.Errorf("agent update of its state object: want Forbidden, got %v", err)
		}
		if err := agent.Patch(ctx, own.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"forged":"true"}}}`))); !apierrors.IsForbidden(err) {
			t.Errorf("agent patch of its state object: want Forbidden, got %v", err)
		}
	})

	t.Run("events: about its own state only", func(t *testing.T) {
		state := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node}}
		if err := env.Client.Create(ctx, state); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, state) })
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(state), state); err != nil {
			t.Fatal(err)
		}
		// The agent's own recorder (controller-runtime's is this one).
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: agentSA, Groups: saGroups(), Extra: extra}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
		stop := make(chan struct{})
		b.StartRecordingToSink(stop)
		t.Cleanup(func() { close(stop); b.Shutdown() })
		rec := b.NewRecorder(env.Scheme, "bpfleet-agent")
		note := fmt.Sprintf("remounted at %d", time.Now().UnixNano())
		rec.Eventf(state, nil, corev1.EventTypeWarning, v1.ReasonBPFFSRemounted, "Apply", "%s", note)
		var recorded *eventsv1.Event
		envtest.Eventually(t, 30*time.Second, func() error {
			var list eventsv1.EventList
			if err := env.Client.List(ctx, &list, client.InNamespace(metav1.NamespaceDefault)); err != nil {
				return err
			}
			for i := range list.Items {
				if e := list.Items[i]; e.Regarding.Name == node && e.Note == note {
					recorded = &list.Items[i]
					return nil
				}
			}
			return fmt.Errorf("the agent's recorder wrote no Event %q about its state", note)
		})
		t.Cleanup(func() { _ = env.Client.Delete(ctx, recorded) })
		// The recorder patches a repeated Event's series.
		if err := agent.Patch(ctx, recorded.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"series":{"count":2,"lastObservedTime":"2026-12-03T10:00:00.000000Z"}}`))); err != nil {
			t.Errorf("agent may not patch its own Event: %v", err)
		}

		pod := ownStateEvent("rights-about-pod", node)
		pod.Regarding = corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: metav1.NamespaceDefault, Name: "web"}
		elsewhere := ownStateEvent("rights-elsewhere", node)
		elsewhere.Namespace = metav1.NamespaceSystem
		elsewhere.Regarding = corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: metav1.NamespaceSystem, Name: "kube-dns"}
		forged := []*eventsv1.Event{ownStateEvent("rights-other-node", other), pod, elsewhere}
		for _, e := range forged {
			if err := agent.Create(ctx, e.DeepCopy()); !isRefused(err) {
				t.Errorf("agent created Event %s about %s %s/%s: want refused, got %v", e.Name, e.Regarding.Kind, e.Regarding.Namespace, e.Regarding.Name, err)
				_ = env.Client.Delete(ctx, e)
			}
		}
		// Someone else's Event: the agent may not rewrite it into its own.
		theirs := ownStateEvent("rights-theirs", other)
		if err := env.Client.Create(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, theirs) })
		if err := agent.Patch(ctx, theirs.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"series":{"count":9,"lastObservedTime":"2026-12-03T10:00:00.000000Z"}}`))); !isRefused(err) {
			t.Errorf("agent patched another node's Event: want refused, got %v", err)
		}
		if err := agent.Delete(ctx, theirs.DeepCopy()); !apierrors.IsForbidden(err) {
			t.Errorf("agent deleted an Event: want Forbidden, got %v", err)
		}
		// The core API's Events are not granted at all.
		core := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "rights-core", Namespace: metav1.NamespaceDefault},
			InvolvedObject: corev1.ObjectReference{APIVersion: v1.GroupVersion.String(), Kind: "BpfNodeState", Name: node},
			Reason:         "Forged", Message: "forged", Type: corev1.EventTypeNormal,
		}
		if err := agent.Create(ctx, core); !apierrors.IsForbidden(err) {
			t.Errorf("agent created a core Event: want Forbidden, got %v", err)
			_ = env.Client.Delete(ctx, core)
		}
	})

	t.Run("nodes: read only", func(t *testing.T) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"bpfleet.io/test": "rights"}}}
		if err := env.Client.Create(ctx, n); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, n) })
		var got corev1.Node
		if err := agent.Get(ctx, client.ObjectKey{Name: node}, &got); err != nil {
			t.Fatalf("agent may not read its Node: %v", err)
		}
		var list corev1.NodeList
		if err := agent.List(ctx, &list, client.MatchingFields{"metadata.name": node}); err != nil || len(list.Items) != 1 {
			t.Fatalf("agent may not list its Node by name (its informer): %d, %v", len(list.Items), err)
		}
		if err := agent.Patch(ctx, got.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"bpfleet.io/test":"forged"}}}`))); !apierrors.IsForbidden(err) {
			t.Errorf("agent patched its Node: want Forbidden, got %v", err)
		}
		if err := agent.Delete(ctx, got.DeepCopy()); !apierrors.IsForbidden(err) {
			t.Errorf("agent deleted its Node: want Forbidden, got %v", err)
		}
	})
}

// isRefused tells whether err is RBAC's or an admission policy's refusal.
func isRefused(err error) bool { return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) }
