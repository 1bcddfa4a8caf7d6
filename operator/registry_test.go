package operator_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestOperatorReadsNoLayer: the operator resolves, verifies and checks a
// bundle against the spec from its manifest and config blob alone; the
// registry serves it no ELF layer (the agents download those to load them).
func TestOperatorReadsNoLayer(t *testing.T) {
	startOperator(t)
	reg := registry.Start(t, registry.Options{})
	priv, pub := keyPair(t)
	trustPolicy(t, "nolayer", reg, pub)
	nodes(t, "nolayer", 1)
	ref, digest := testbundle.Push(t, reg, "ebpf/nolayer", "v1", testbundle.Source{})
	sign(t, ref, priv)
	r, err := remote.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	b, err := remote.New(remote.Options{}).Fetch(context.Background(), r.Repository, digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := format.ParseImageManifest(b.ImageManifest())
	if err != nil {
		t.Fatal(err)
	}
	layer, config := im.Layers[0].Digest.String(), im.Config.Digest.String()
	layerGets, configGets := reg.BlobGets(layer), reg.BlobGets(config)

	program(t, "nolayer", ref, "nolayer")
	waitCondition(t, "nolayer", v1.ConditionBundleResolved, metav1.ConditionTrue, v1.ReasonResolved)
	waitCondition(t, "nolayer", v1.ConditionSignatureVerified, metav1.ConditionTrue, v1.ReasonVerified)
	if got := reg.BlobGets(layer) - layerGets; got != 0 {
		t.Errorf("the operator downloaded the ELF layer %d time(s)", got)
	}
	if got := reg.BlobGets(config) - configGets; got < 1 {
		t.Errorf("the operator never read the config blob (%d), so it did not check the manifest", got)
	}
}
