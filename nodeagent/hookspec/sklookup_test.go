package hookspec_test

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
)

// TestSkLookupBlock: the skLookup block parses into an sk_lookup hook on
// the named namespace (the agent's own when none is named) that takes
// sk_lookup programs only.
func TestSkLookupBlock(t *testing.T) {
	for _, tc := range []struct {
		netns, point string
	}{
		{"/var/run/netns/blue", "sk_lookup//var/run/netns/blue"},
		{"", "sk_lookup//proc/self/ns/net"},
	} {
		h, err := hookspec.Parse(v1alpha1.ProgramAttachment{Name: "p", SkLookup: &v1alpha1.SkLookupAttach{NetNS: tc.netns}})
		if err != nil {
			t.Fatal(err)
		}
		if h.Kind() != attach.KindSkLookup || h.Program() != "p" {
			t.Errorf("hook %s of %s, want %s of p", h.Kind(), h.Program(), attach.KindSkLookup)
		}
		ts, err := h.Targets(attach.Env{HostRoot: "/host"})
		if err != nil || len(ts) != 1 || ts[0].Point != tc.point {
			t.Errorf("targets %+v (%v), want one at %s", ts, err, tc.point)
		}
		if err := h.Prepare(&ebpf.ProgramSpec{Type: ebpf.SkLookup, AttachType: ebpf.AttachSkLookup}); err != nil {
			t.Errorf("sk_lookup program refused: %v", err)
		}
		if err := h.Prepare(&ebpf.ProgramSpec{Type: ebpf.XDP}); err == nil {
			t.Error("xdp program accepted")
		}
	}
}
