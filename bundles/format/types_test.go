package format_test

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
)

func TestProgramTypeNames(t *testing.T) {
	tests := []struct {
		typ  ebpf.ProgramType // cilium/ebpf type
		name string           // manifest name
	}{
		{ebpf.XDP, "xdp"}, {ebpf.SchedCLS, "sched_cls"}, {ebpf.TracePoint, "tracepoint"},
		{ebpf.RawTracepoint, "raw_tracepoint"}, {ebpf.Tracing, "tracing"}, {ebpf.Kprobe, "kprobe"},
		{ebpf.CGroupSKB, "cgroup_skb"}, {ebpf.Extension, "ext"},
	}
	for _, tt := range tests {
		got, err := format.ProgramTypeName(tt.typ)
		if err != nil || got != tt.name {
			t.Errorf("ProgramTypeName(%s) = %q, %v; want %q", tt.typ, got, err, tt.name)
		}
		back, err := format.ParseProgramType(tt.name)
		if err != nil || back != tt.typ {
			t.Errorf("ParseProgramType(%q) = %s, %v", tt.name, back, err)
		}
	}
	if _, err := format.ParseProgramType("Xdp"); !errors.Is(err, bundles.ErrBundleInvalid) {
		t.Errorf("ParseProgramType(Xdp) = %v", err)
	}
}

func TestAttachTypeNames(t *testing.T) {
	tests := []struct {
		prog ebpf.ProgramType // program type
		at   ebpf.AttachType  // attach type
		name string           // manifest name ("" = none)
	}{
		{ebpf.XDP, ebpf.AttachXDP, "XDP"},
		{ebpf.Tracing, ebpf.AttachTraceFEntry, "TraceFEntry"},
		{ebpf.CGroupSKB, ebpf.AttachCGroupInetIngress, "CGroupInetIngress"},
		{ebpf.CGroupSKB, ebpf.AttachCGroupInetEgress, "CGroupInetEgress"},
		{ebpf.SchedCLS, ebpf.AttachTCXIngress, "TCXIngress"},
		{ebpf.TracePoint, ebpf.AttachNone, ""},
	}
	for _, tt := range tests {
		if got := format.AttachTypeName(tt.prog, tt.at); got != tt.name {
			t.Errorf("AttachTypeName(%s, %d) = %q, want %q", tt.prog, tt.at, got, tt.name)
		}
		if tt.name == "" {
			continue
		}
		if back, err := format.ParseAttachType(tt.name); err != nil || back != tt.at {
			t.Errorf("ParseAttachType(%q) = %d, %v; want %d", tt.name, back, err, tt.at)
		}
	}
	if _, err := format.ParseAttachType("None"); !errors.Is(err, bundles.ErrBundleInvalid) {
		t.Errorf(`ParseAttachType("None") = %v, want ErrBundleInvalid`, err)
	}
}
