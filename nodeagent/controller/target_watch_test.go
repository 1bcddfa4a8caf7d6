package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestAgentWatchSeesNoProgress: the agent's role watches BpfProgramTargets
// and may no longer read BpfPrograms, and a progress-only status write of a
// BpfProgram (node counts, updated and failed nodes, a condition's message)
// reaches no agent's watch, while the next rollout decision reaches it once.
func TestAgentWatchSeesNoProgress(t *testing.T) {
	ctx := context.Background()
	agent, err := client.NewWithWatch(agentConfig(t), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.List(ctx, &v1alpha1.BpfProgramList{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent listing BpfPrograms: %v, want forbidden (it reads targets only)", err)
	}
	p := &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "progress-" + randHex(4)},
		Spec: v1alpha1.BpfProgramSpec{
			Bundle: v1alpha1.BundleSource{Image: "registry.example/ebpf/progress:v1"},
			Programs: []v1alpha1.ProgramAttachment{{Name: "trace_open",
				Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: "sys_enter_openat"}}},
			// No node: only the watch matters here.
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{nodeLabel: "none"}},
		},
	}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	first, next := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	setRollout(t, p, first, first, "")

	target := &v1alpha1.BpfProgramTarget{}
	envtest.Eventually(t, 30*time.Second, func() error {
		if err := agent.Get(ctx, client.ObjectKey{Name: p.Name}, target); err != nil {
			return err
		}
		if ro := target.Spec.Rollout; ro == nil || ro.TargetDigest != first {
			return fmt.Errorf("target's rollout %+v, want target %s", ro, first)
		}
		return nil
	})
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	w, err := agent.Watch(wctx, &v1alpha1.BpfProgramTargetList{},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: target.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	nextEvent := func(within time.Duration) (watch.Event, bool) {
		deadline := time.After(within)
		for {
			select {
			case ev := <-w.ResultChan():
				if o, ok := ev.Object.(client.Object); ok && o.GetName() == p.Name {
					return ev, true
				}
			case <-deadline:
				return watch.Event{}, false
			}
		}
	}

	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Status.Nodes = v1alpha1.NodeCounts{Selected: 3, Attached: 2, Failed: 1, Summary: "2/3"}
	p.Status.Rollout.UpdatedNodes = 2
	p.Status.Rollout.FailedNodes = []string{"node-3"}
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonRolloutInProgress, Message: "2/3 node(s) run it", ObservedGeneration: p.Generation})
	if err := env.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	// The stand-in for the operator writes within milliseconds of a change.
	if ev, ok := nextEvent(2 * time.Second); ok {
		t.Fatalf("a progress-only status write reached the agent's watch: %s %+v", ev.Type, ev.Object)
	}

	setRollout(t, p, first, next, "")
	ev, ok := nextEvent(30 * time.Second)
	if !ok {
		t.Fatal("a new target digest did not reach the agent's watch")
	}
	if got, isTarget := ev.Object.(*v1alpha1.BpfProgramTarget); !isTarget || ev.Type != watch.Modified || got.Spec.Rollout == nil || got.Spec.Rollout.TargetDigest != next {
		t.Fatalf("the agent's watch saw %s %+v, want the target modified to %s", ev.Type, ev.Object, next)
	}
}
