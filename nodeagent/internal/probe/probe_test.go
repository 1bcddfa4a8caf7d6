package probe_test

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/internal/probe"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func TestFeatures(t *testing.T) {
	privileged.RequireRoot(t)
	got := map[string]bool{}
	for _, f := range probe.Features() {
		got[f.Name] = f.Supported
	}
	// Every kernel with tcx (6.6+, which bpfleet needs for tc) has these.
	for _, name := range []string{"program/xdp", "program/sched_cls", "program/tracepoint", "program/kprobe", "program/cgroup_skb", "link/tcx"} {
		if !got[name] {
			t.Errorf("%s reported unsupported", name)
		}
	}
	// The kprobe answer follows the kernel's own files.
	_, pmu := os.Stat("/sys/bus/event_source/devices/kprobe/type")
	_, events := os.Stat("/sys/kernel/tracing/kprobe_events")
	if want := pmu == nil || events == nil; got["link/kprobe"] != want {
		t.Errorf("link/kprobe = %v, want %v", got["link/kprobe"], want)
	}
	if err := probe.Kprobes(); err != nil && !errors.Is(err, probe.ErrNotSupported) {
		t.Errorf("Kprobes error does not wrap ErrNotSupported: %v", err)
	}
	if err := probe.ProgramType(ebpf.Tracing); err != nil && !errors.Is(err, probe.ErrNotSupported) {
		t.Errorf("ProgramType(Tracing) = %v, want nil or ErrNotSupported", err)
	}
}
