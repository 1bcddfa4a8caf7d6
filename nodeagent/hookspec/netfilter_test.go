package hookspec_test

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
)

// TestNetfilterBlock: the netfilter block parses into a netfilter hook on
// the named namespace (the agent's own when none is named) that takes
// netfilter programs only.
func TestNetfilterBlock(t *testing.T) {
	for _, tc := range []struct {
		block v1alpha1.NetfilterAttach
		point string
	}{
		{v1alpha1.NetfilterAttach{Family: "ipv4", Hook: "input", NetNS: "/var/run/netns/blue"}, "netfilter/ipv4/input/0:/host/var/run/netns/blue"},
		{v1alpha1.NetfilterAttach{Family: "ipv6", Hook: "output", Priority: -5}, "netfilter/ipv6/output/-5:/proc/self/ns/net"},
	} {
		h, err := hookspec.Parse(v1alpha1.ProgramAttachment{Name: "p", Netfilter: &tc.block})
		if err != nil {
			t.Fatal(err)
		}
		if h.Kind() != attach.KindNetfilter || h.Program() != "p" {
			t.Errorf("hook %s of %s, want %s of p", h.Kind(), h.Program(), attach.KindNetfilter)
		}
		ts, err := h.Targets(attach.Env{HostRoot: "/host"})
		if err != nil || len(ts) != 1 || ts[0].Point != tc.point {
			t.Errorf("targets %+v (%v), want one at %s", ts, err, tc.point)
		}
		if err := h.Prepare(&ebpf.ProgramSpec{Type: ebpf.Netfilter, AttachType: ebpf.AttachNetfilter}); err != nil {
			t.Errorf("netfilter program refused: %v", err)
		}
		if err := h.Prepare(&ebpf.ProgramSpec{Type: ebpf.XDP}); err == nil {
			t.Error("xdp program accepted")
		}
	}
}
