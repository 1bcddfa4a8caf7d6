package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// TestNetfilterBlock: the netfilter attach block is one attach block like
// the others; its family, hook, priority and path are checked.
func TestNetfilterBlock(t *testing.T) {
	netfilter := func(b v1.NetfilterAttach) func(p *v1.BpfProgram) {
		return func(p *v1.BpfProgram) {
			p.Spec.Programs[0].XDP = nil
			p.Spec.Programs[0].Netfilter = &b
		}
	}
	tests := []struct {
		name   string
		mutate func(p *v1.BpfProgram)
		// message is a fragment of the refusal; "" when accepted.
		message string
	}{
		{name: "the node's namespace", mutate: netfilter(v1.NetfilterAttach{Family: "ipv4", Hook: "input"})},
		{name: "a named namespace, a priority", mutate: netfilter(v1.NetfilterAttach{Family: "ipv6", Hook: "postrouting", Priority: -100, NetNS: "/var/run/netns/blue"})},
		{name: "unknown family", mutate: netfilter(v1.NetfilterAttach{Family: "arp", Hook: "input"}), message: "supported values"},
		{name: "unknown hook", mutate: netfilter(v1.NetfilterAttach{Family: "ipv4", Hook: "ingress"}), message: "supported values"},
		{name: "reserved priority", mutate: netfilter(v1.NetfilterAttach{Family: "ipv4", Hook: "input", Priority: 2147483647}), message: "less than or equal to"},
		{name: "path with ..", mutate: netfilter(v1.NetfilterAttach{Family: "ipv4", Hook: "input", NetNS: "/var/run/netns/../../etc/passwd"}), message: "must not contain .."},
		{name: "with another block", mutate: func(p *v1.BpfProgram) {
			p.Spec.Programs[0].Netfilter = &v1.NetfilterAttach{Family: "ipv4", Hook: "input"}
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
