package controller

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
)

// FuzzDesired feeds arbitrary BpfPrograms (JSON: spec and status, as an
// apiserver without validation could hold them) and node labels to the
// agent's desired-set conversion: selection, the digest for the node, and
// the status of held entries. It must never panic; a node's digest is always
// one the operator put in status.rollout; selector errors name the
// BpfProgram; every held entry says why. Seeds are config/samples with
// rollouts in progress, halted and complete.
func FuzzDesired(f *testing.F) {
	samples, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "bpfleet_v1alpha1_bpfprogram_*.yaml"))
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	statuses := []v1alpha1.BpfProgramStatus{
		{},
		{ResolvedDigest: d1, Rollout: &v1alpha1.RolloutStatus{TargetDigest: d1, StableDigest: d1}},
		{ResolvedDigest: d2, Rollout: &v1alpha1.RolloutStatus{TargetDigest: d2, StableDigest: d1, Wave: 1}},
		{ResolvedDigest: d2, Rollout: &v1alpha1.RolloutStatus{TargetDigest: d2, StableDigest: d1, HaltedReason: "node failed"}},
	}
	for _, s := range samples {
		y, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		var p v1alpha1.BpfProgram
		if err := yaml.Unmarshal(y, &p); err != nil {
			f.Fatalf("%s: %v", s, err)
		}
		for _, st := range statuses {
			p.Status = st
			b, err := json.Marshal(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, "node-1", "bpfleet.io/filter", "enabled")
		}
	}
	f.Add([]byte(`{"spec":{"nodeSelector":{"matchExpressions":[{"key":"a","operator":"Bogus"}]}}}`), "n", "a", "b")
	f.Add([]byte(`{"status":{"rollout":{"targetDigest":"x","wave":-3}}}`), "", "", "")
	f.Fuzz(func(t *testing.T, program []byte, nodeName, labelKey, labelValue string) {
		var p v1alpha1.BpfProgram
		if err := json.Unmarshal(program, &p); err != nil {
			return
		}
		if p.Name == "" {
			p.Name = "fuzzed"
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{labelKey: labelValue}}}
		sel, held, err := selected([]v1alpha1.BpfProgram{p}, node, func(types.UID) bool { return true })
		if (len(held) > 0) != (err != nil) {
			t.Fatalf("held %v, error %v: a selector that cannot be evaluated must hold what is on the node", held, err)
		}
		if err != nil && !strings.Contains(err.Error(), "BpfProgram "+p.Name) {
			t.Fatalf("selector error does not name the BpfProgram: %v", err)
		}
		var desired []dataplane.Desired
		for _, sp := range sel {
			d := dataplane.Desired{Name: sp.Name, UID: sp.UID, Spec: *sp.Spec.DeepCopy(), Digest: rollout.DigestForNode(sp, nodeName)}
			if r := sp.Status.Rollout; d.Digest != "" && (r == nil || (d.Digest != r.TargetDigest && d.Digest != r.StableDigest)) {
				t.Fatalf("node %q gets digest %q that status.rollout %+v never named", nodeName, d.Digest, r)
			}
			if h := held[sp.UID]; h != nil {
				d.Hold = dataplane.Hold(holdReason(h), h)
			} else if d.Digest == "" {
				d.Hold = dataplane.Hold(holdReason(errWaitingForDigest), errWaitingForDigest)
			} else {
				d.Hold = dataplane.Hold(holdReason(bundles.ErrRegistryUnavailable), bundles.ErrRegistryUnavailable)
			}
			desired = append(desired, d)
		}
		states := explainHolds(nil, desired)
		for _, s := range states {
			if s.Reason == "" || s.Message == "" || (s.State != v1alpha1.PhasePending && s.State != v1alpha1.PhaseFailed) {
				t.Fatalf("held entry without a reason or in state %s: %+v", s.State, s)
			}
		}
		for _, d := range desired {
			if errors.Is(d.Hold, bundles.ErrRegistryUnavailable) != transientHold(d.Hold) {
				t.Fatalf("hold %v: transient %t", d.Hold, transientHold(d.Hold))
			}
		}
	})
}
