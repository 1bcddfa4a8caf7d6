package controller_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestShippedXDPFilter runs the shipped xdp-pod-filter bundle (bpf/xdpfilter)
// through the agent: a typed packet-of-death rule written as a map entry
// drops the matching datagrams only, and the bundle's declared metric map
// (rule_hits) is exported.
func TestShippedXDPFilter(t *testing.T) {
	w := newWorld(t)
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ref, digest := w.pushDir(t, filepath.Join(root, "bpf", "xdpfilter"), "shipped", true)
	rule := xdpfilter.Rule{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: deniedPort, Pattern: []byte("DEATH")}
	key, value, err := rule.MapEntry(0)
	if err != nil {
		t.Fatal(err)
	}
	p := w.createProgram(t, ref, digest, v1alpha1.MapEntry{Map: xdpfilter.RulesMap, Key: key, Value: value})
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Programs[0].Name = xdpfilter.ProgramName
	if err := env.Client.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	setRollout(t, p, digest, digest, "")
	w.startAgent(t)
	e := w.waitEntry(t, p, "xdp-pod-filter attached", func(s v1alpha1.ProgramState) bool {
		return attachedAt(digest)(s) && s.Generation == p.Generation
	})

	if got := w.deliveredPayload(t, deniedPort, 20, []byte("DEATH packet")); got != 0 {
		t.Errorf("%d of 20 packets of death arrived", got)
	}
	if got := w.deliveredPayload(t, deniedPort, 20, []byte("harmless")); got == 0 {
		t.Errorf("harmless datagrams to the same port were dropped")
	}
	checkMetricsOf(t, w.node, e.ID, xdpfilter.HitsMap, "0", 20)
}

// TestProgramTypeDeniedOnTheNode: the trust policy admits only tracepoint
// programs for the repository; the bundle is signed by its key but holds an
// XDP program. Even with the operator's status telling the node to run it
// (set by the test), the agent refuses before loading anything.
func TestProgramTypeDeniedOnTheNode(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.policy.Spec.AllowedProgramTypes = []string{"tracepoint"}
	if err := env.Client.Update(ctx, w.policy); err != nil {
		t.Fatalf("restrict the trust policy: %v", err)
	}
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t)
	e := w.waitEntry(t, p, "refused for its program type", func(s v1alpha1.ProgramState) bool {
		return s.State == v1alpha1.PhaseFailed && s.Reason == v1alpha1.ReasonVerifyFailed
	})
	if e.ID != 0 || !strings.Contains(e.Message, "xdp") || !strings.Contains(e.Message, "program type") {
		t.Errorf("refused entry %+v: want no program and a message naming the denied type", e)
	}
	if left := w.bpffsLeft(t); len(left) != 0 {
		t.Errorf("something was pinned for a denied program type: %v", left)
	}
	if got := w.delivered(t, deniedPort, 5); got == 0 {
		t.Errorf("the XDP filter runs although the policy denies XDP")
	}
}
