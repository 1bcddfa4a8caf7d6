package operator_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	programpkg "github.com/bpfleet/bpfleet/operator/program"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestApplyWritesRolloutFirst: admitting a new BpfProgram costs the
// operator two writes, the rollout status first (what the agents wait for)
// and then the finalizer with the verification annotation; and a second
// BpfProgram of the same admitted digest reads neither the manifest nor the
// signature from the registry again (only the tag's resolve).
func TestApplyWritesRolloutFirst(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, "writes", reg, pub)
	nodes(t, "writes", 1)
	ref, digest := testbundle.Push(t, reg, "ebpf/writes", "v1", testbundle.Source{})
	sign(t, ref, priv)
	ctx := context.Background()

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := wc.Watch(wctx, &v1.BpfProgramList{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	program(t, "writes", ref, "writes")

	var writes []*v1.BpfProgram
	settled := time.After(25 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*v1.BpfProgram)
			if !ok || p.Name != "writes" || ev.Type != "MODIFIED" {
				continue
			}
			writes = append(writes, p)
			if slices.Contains(p.Finalizers, v1.FinalizerNodeCleanup) && p.Annotations[programpkg.VerifiedForAnnotation] != "" {
				// Anything else the operator writes now would come at once.
				settled = time.After(time.Second)
			}
		case <-settled:
			done = true
		}
	}
	if len(writes) != 2 {
		t.Fatalf("the operator wrote the new program %d times, want 2 (status, then metadata): %v", len(writes), describe(writes))
	}
	if ro := writes[0].Status.Rollout; ro == nil || ro.TargetDigest != digest {
		t.Errorf("first write carries rollout %+v, want target %s", ro, digest)
	}
	if slices.Contains(writes[0].Finalizers, v1.FinalizerNodeCleanup) {
		t.Errorf("first write already carries the finalizer: it should not wait for it")
	}
	if !slices.Contains(writes[1].Finalizers, v1.FinalizerNodeCleanup) || writes[1].Annotations[programpkg.VerifiedForAnnotation] == "" {
		t.Errorf("second write: finalizers %v, annotations %v; want the finalizer and %s", writes[1].Finalizers, writes[1].Annotations, programpkg.VerifiedForAnnotation)
	}

	// The same digest again: from the operator's memory.
	b, err := remote.New(remote.Options{}).Fetch(ctx, reg.Repository("ebpf/writes"), digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		t.Fatal(err)
	}
	config := im.Config.Digest.String()
	before := reg.BlobGets(config)
	program(t, "writes-again", ref, "writes")
	p := waitCondition(t, "writes-again", v1.ConditionSignatureVerified, "True", v1.ReasonVerified)
	if p.Status.Rollout == nil || p.Status.Rollout.TargetDigest != digest {
		t.Errorf("second program's rollout %+v, want target %s", p.Status.Rollout, digest)
	}
	if got := reg.BlobGets(config) - before; got != 0 {
		t.Errorf("admitting the same digest again read the bundle's config blob %d time(s), want 0", got)
	}
}

func describe(ps []*v1.BpfProgram) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("rv %s finalizers %v annotations %d rollout %v", p.ResourceVersion, p.Finalizers, len(p.Annotations), p.Status.Rollout != nil))
	}
	return out
}
