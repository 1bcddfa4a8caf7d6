package status_test

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/internal/status"
)

func TestTypeName(t *testing.T) {
	for typ, want := range map[ebpf.ProgramType]string{
		ebpf.XDP:              "xdp",
		ebpf.SchedCLS:         "sched_cls",
		ebpf.TracePoint:       "tracepoint",
		ebpf.RawTracepoint:    "raw_tracepoint",
		ebpf.Kprobe:           "kprobe",
		ebpf.Tracing:          "tracing",
		ebpf.CGroupSKB:        "cgroup_skb",
		ebpf.ProgramType(200): "type_200",
	} {
		if got := status.TypeName(typ); got != want {
			t.Errorf("TypeName(%d) = %q, want %q", typ, got, want)
		}
	}
}
