package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestSkLookupBlock: the skLookup attach block is one attach block like the
// others (alone, with or without a netns path), and its path is checked.
func TestSkLookupBlock(t *testing.T) {
	skLookup := func(netns string) func(p *v1.BpfProgram) {
		return func(p *v1.BpfProgram) {
			p.Spec.Programs[0].XDP = nil
			p.Spec.Programs[0].SkLookup = &v1.SkLookupAttach{NetNS: netns}
		}
	}
	tests := []struct {
		name   string
		mutate func(p *v1.BpfProgram)
		// message is a fragment of the refusal; "" when accepted.
		message string
	}{
		{name: "the node's namespace", mutate: skLookup("")},
		{name: "a named namespace", mutate: skLookup("/var/run/netns/blue")},
		{name: "relative path", mutate: skLookup("var/run/netns/blue"), message: "should match"},
		{name: "path with ..", mutate: skLookup("/var/run/netns/../../etc/passwd"), message: "must not contain .."},
		{name: "with another block", mutate: func(p *v1.BpfProgram) {
			p.Spec.Programs[0].SkLookup = &v1.SkLookupAttach{}
		}, message: "exactly one attach block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProgram()
			tt.mutate(p)
			err := env.Client.Create(context.Background(), p, client.DryRunAll)
			if tt.message == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("want Invalid with %q, got %v", tt.message, err)
			}
		})
	}
}
