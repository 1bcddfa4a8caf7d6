package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// fuzzVerifier answers every verification with one of four outcomes.
type fuzzVerifier byte

func (v fuzzVerifier) Verify(context.Context, string, string, []v1alpha1.BundleTrustPolicy) (trust.Result, error) {
	switch v % 4 {
	case 0:
		return trust.Result{Policy: "p", KeyName: "k"}, nil
	case 1:
		return trust.Result{}, fmt.Errorf("read signatures: %w", bundles.ErrRegistryUnavailable)
	case 2:
		return trust.Result{}, fmt.Errorf("policy p: %w", bundles.ErrSignatureMismatch)
	}
	return trust.Result{}, errors.Join(fmt.Errorf("policy p: %w", bundles.ErrSignatureMismatch), fmt.Errorf("key k: %w", bundles.ErrKeyUnavailable))
}

// FuzzDesired feeds arbitrary BpfPrograms (JSON: spec and status, as an
// apiserver without validation could hold them), node labels, the node's
// kernel release, what the node runs, and the verifier's answer to the
// reconciler's own plan (selection, admission grace, the digest for the
// node, pinning, verification, the registry-down path) and to
// explainHolds. It must never panic; a node's digest is always one the
// operator put in status.rollout; a pinned image never gets another digest
// admitted; selector errors name the BpfProgram; every entry has a bundle
// or a hold, and every held entry says why. Seeds are config/samples with
// rollouts in progress, halted and complete.
func FuzzDesired(f *testing.F) {
	samples, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "bpfleet_v1alpha1_bpfprogram_*.yaml"))
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	statuses := []v1alpha1.BpfProgramStatus{
		{},
		{ResolvedDigest: d1, Rollout: &v1alpha1.RolloutStatus{TargetDigest: d1, StableDigest: d1}},
		{ResolvedDigest: d2, Rollout: &v1alpha1.RolloutStatus{TargetDigest: d2, StableDigest: d1, Wave: 1}},
		{ResolvedDigest: d2, Rollout: &v1alpha1.RolloutStatus{TargetDigest: d2, StableDigest: d1, HaltedReason: "node failed"}},
		{ResolvedDigest: d2, Rollout: &v1alpha1.RolloutStatus{TargetDigest: d2, StableDigest: d1,
			PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15.0", Node: "n9", Reason: "x"}}}},
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
		for i, st := range statuses {
			p.Status = st
			b, err := json.Marshal(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, "node-1", "bpfleet.io/filter", "enabled", "5.15.0", byte(i), "")
			f.Add(b, "node-1", "bpfleet.io/filter", "enabled", "6.18.0", byte(i+1), d1)
		}
		// Pinned to d2 while status names d1.
		p.Spec.Bundle.Image = "registry.example.com/ebpf/x@" + d2
		p.Status = statuses[1]
		b, _ := json.Marshal(p)
		f.Add(b, "node-1", "bpfleet.io/filter", "enabled", "6.18.0", byte(0), d1)
	}
	f.Add([]byte(`{"spec":{"nodeSelector":{"matchExpressions":[{"key":"a","operator":"Bogus"}]}}}`), "n", "a", "b", "", byte(0), "")
	f.Add([]byte(`{"status":{"rollout":{"targetDigest":"x","wave":-3}}}`), "n", "", "", "", byte(1), "x")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bundle := fakeBundle(f, "xdp", "tracepoint")
	f.Fuzz(func(t *testing.T, program []byte, nodeName, labelKey, labelValue, release string, verdict byte, runs string) {
		var p v1alpha1.BpfProgram
		if err := json.Unmarshal(program, &p); err != nil {
			return
		}
		if p.Name == "" {
			p.Name = "fuzzed"
		}
		if len(validation.IsDNS1123Subdomain(nodeName)) > 0 {
			return // the agent's own node name, which the apiserver validated
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{labelKey: labelValue}}}
		var snapshot []v1alpha1.ProgramState
		if runs != "" {
			snapshot = []v1alpha1.ProgramState{{BpfProgram: p.Name, UID: p.UID, Digest: runs, State: v1alpha1.PhaseAttached, ID: 7}}
		}
		var policies []v1alpha1.BundleTrustPolicy
		ref, refErr := remote.ParseReference(p.Spec.Bundle.Image)
		if refErr == nil {
			policies = []v1alpha1.BundleTrustPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "p"},
				Spec: v1alpha1.BundleTrustPolicySpec{Images: []string{ref.Repository}}}}
		}
		r := &Reconciler{NodeName: nodeName, Dataplane: kernelOnly{release: release}, Bundles: cachedBundles{bundle},
			Verifier: &VerifyMemo{Verifier: fuzzVerifier(verdict)}}

		pl := r.plan(context.Background(), node, []v1alpha1.BpfProgram{p}, nil, policies, snapshot, now, &phaseTimes{})

		if pl.selErr != nil && !strings.Contains(pl.selErr.Error(), "BpfProgram "+p.Name) {
			t.Fatalf("selector error does not name the BpfProgram: %v", pl.selErr)
		}
		if pl.selErr != nil && runs != "" && (len(pl.desired) != 1 || holdReason(pl.desired[0].Hold) != v1alpha1.ReasonInvalidNodeSelector) {
			t.Fatalf("a selector that cannot be evaluated must hold what runs on the node: %+v", pl.desired)
		}
		for _, d := range pl.desired {
			if (d.Hold == nil) == (d.Bundle == nil) {
				t.Fatalf("entry with hold %v and bundle set %t: exactly one of them", d.Hold, d.Bundle != nil)
			}
			if r := p.Status.Rollout; d.Digest != "" && (r == nil || (d.Digest != r.TargetDigest && d.Digest != r.StableDigest)) {
				t.Fatalf("node %q gets digest %q that status.rollout %+v never named", nodeName, d.Digest, r)
			}
			if refErr == nil && ref.Digest != "" && d.Bundle != nil && d.Digest != ref.Digest {
				t.Fatalf("image pinned to %s, yet %s admitted", ref.Digest, d.Digest)
			}
			if d.Hold == nil {
				continue
			}
			switch reason := holdReason(d.Hold); reason {
			case v1alpha1.ReasonWaitingForWave, v1alpha1.ReasonDigestNotPinned, v1alpha1.ReasonVerifyFailed, v1alpha1.ReasonInvalidNodeSelector:
				if transientHold(d.Hold) {
					t.Fatalf("hold %v (%s) retried as transient", d.Hold, reason)
				}
			case v1alpha1.ReasonPullFailed, v1alpha1.ReasonKeyUnavailable:
				if !transientHold(d.Hold) {
					t.Fatalf("hold %v (%s) not retried", d.Hold, reason)
				}
			default:
				t.Fatalf("hold %v with unexpected reason %s", d.Hold, reason)
			}
		}
		for _, s := range explainHolds(nil, pl.desired) {
			if s.Reason == "" || s.Message == "" || (s.State != v1alpha1.PhasePending && s.State != v1alpha1.PhaseFailed) {
				t.Fatalf("held entry without a reason or in state %s: %+v", s.State, s)
			}
		}
	})
}
