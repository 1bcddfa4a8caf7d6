package hooks_test

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func TestFits(t *testing.T) {
	cgroup := func(hook v1alpha1.CgroupAttachType) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Cgroup: &v1alpha1.CgroupAttach{AttachType: hook}}
	}
	rawtp := v1alpha1.ProgramAttachment{RawTracepoint: &v1alpha1.RawTracepointAttach{}}
	tests := []struct {
		attach v1alpha1.ProgramAttachment // the spec's block
		typ    ebpf.ProgramType           // the program's type
		at     ebpf.AttachType            // its expected attach type
		want   bool
	}{
		{cgroup("ingress"), ebpf.CGroupSKB, ebpf.AttachCGroupInetIngress, true},
		{cgroup("device"), ebpf.CGroupDevice, ebpf.AttachCGroupDevice, true},
		{cgroup("ingress"), ebpf.CGroupDevice, ebpf.AttachCGroupDevice, false},
		{cgroup("ingress"), ebpf.SockOps, ebpf.AttachCGroupSockOps, false},
		{cgroup("no-such-hook"), ebpf.CGroupSKB, ebpf.AttachNone, false},
		{rawtp, ebpf.RawTracepoint, ebpf.AttachNone, true},
		{rawtp, ebpf.Tracing, ebpf.AttachTraceRawTp, true},
		{rawtp, ebpf.Tracing, ebpf.AttachTraceFEntry, false},
	}
	for _, tt := range tests {
		if got := hooks.Fits(tt.attach, tt.typ, tt.at); got != tt.want {
			t.Errorf("Fits(%s, %s, %s) = %v, want %v", hooks.AttachType(tt.attach), tt.typ, tt.at, got, tt.want)
		}
	}
}

func TestAttachType(t *testing.T) {
	tests := []struct {
		attach v1alpha1.ProgramAttachment
		want   string
	}{
		{v1alpha1.ProgramAttachment{XDP: &v1alpha1.XDPAttach{}}, "xdp"},
		{v1alpha1.ProgramAttachment{TC: &v1alpha1.TCAttach{Direction: v1alpha1.TCEgress}}, "tc/egress"},
		{v1alpha1.ProgramAttachment{Cgroup: &v1alpha1.CgroupAttach{AttachType: "connect4"}}, "cgroup/connect4"},
		{v1alpha1.ProgramAttachment{Uprobe: &v1alpha1.UprobeAttach{}}, "uprobe"},
		{v1alpha1.ProgramAttachment{}, ""},
	}
	for _, tt := range tests {
		if got := hooks.AttachType(tt.attach); got != tt.want {
			t.Errorf("AttachType = %q, want %q", got, tt.want)
		}
	}
}
