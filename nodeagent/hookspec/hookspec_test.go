package hookspec_test

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

// Moved from nodeagent/attach: the attach blocks of the API, parsed into
// hooks, give the same attach points and prepare programs the same way.

// targets parses a and resolves its targets against ifaces.
func targets(a v1alpha1.ProgramAttachment, ifaces []netwatch.Interface, primary string) ([]attach.Target, error) {
	h, err := hookspec.Parse(a)
	if err != nil {
		return nil, err
	}
	return h.Targets(attach.Env{Interfaces: ifaces, Primary: primary})
}

// prepare parses a and prepares ps for it.
func prepare(ps *ebpf.ProgramSpec, a v1alpha1.ProgramAttachment) error {
	h, err := hookspec.Parse(a)
	if err != nil {
		return err
	}
	return h.Prepare(ps)
}

var ifaces = []netwatch.Interface{{Name: "lo", Index: 1}, {Name: "eth0", Index: 2}, {Name: "eth1", Index: 3}, {Name: "veth1a2b", Index: 7}}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    v1alpha1.ProgramAttachment
		// points are the expected attach points, in order.
		points []string
		// err is the expected error, nil for none.
		err error
	}{
		{name: "xdp by name", a: v1alpha1.ProgramAttachment{Name: "p", XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{"eth1"}}}},
			points: []string{"xdp/eth1"}},
		{name: "xdp glob generic", a: v1alpha1.ProgramAttachment{Name: "p", XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{"eth*"}}, Mode: v1alpha1.XDPModeGeneric}},
			points: []string{"xdp-generic/eth0", "xdp-generic/eth1"}},
		{name: "tcx primary plus glob, no duplicates", a: v1alpha1.ProgramAttachment{Name: "p", TC: &v1alpha1.TCAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{"eth[0-9]", "veth*"}, Primary: true}, Direction: v1alpha1.TCEgress}},
			points: []string{"tcx-egress/eth0", "tcx-egress/eth1", "tcx-egress/veth1a2b"}},
		{name: "no match is no target", a: v1alpha1.ProgramAttachment{Name: "p", XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{"wlan*"}}}}},
		{name: "bad glob", a: v1alpha1.ProgramAttachment{Name: "p", XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{"eth["}}}}, err: errAny},
		{name: "tracepoint", a: v1alpha1.ProgramAttachment{Name: "p", Tracepoint: &v1alpha1.TracepointAttach{Group: "sched", Name: "sched_process_exec"}},
			points: []string{"tracepoint/sched/sched_process_exec"}},
		{name: "uretprobe with pid", a: v1alpha1.ProgramAttachment{Name: "p", Uprobe: &v1alpha1.UprobeAttach{Path: "/usr/bin/bash", Symbol: "readline", Return: true, PID: ptr(int32(42))}},
			points: []string{"uretprobe//usr/bin/bash:readline@42"}},
		{name: "cgroup absolute", a: v1alpha1.ProgramAttachment{Name: "p", Cgroup: &v1alpha1.CgroupAttach{Path: "/sys/fs/cgroup/x/../y", AttachType: "ingress"}},
			points: []string{"cgroup/ingress:/sys/fs/cgroup/y"}},
		{name: "kretprobe", a: v1alpha1.ProgramAttachment{Name: "p", Kprobe: &v1alpha1.KprobeAttach{Function: "tcp_connect", Return: true}}, points: []string{"kretprobe/tcp_connect"}},
		{name: "no attach block", a: v1alpha1.ProgramAttachment{Name: "p"}, err: attach.ErrNoAttachBlock},
		{name: "two attach blocks", a: v1alpha1.ProgramAttachment{Name: "p", Fentry: &v1alpha1.FunctionAttach{Function: "f"}, Fexit: &v1alpha1.FunctionAttach{Function: "f"}}, err: attach.ErrNoAttachBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := targets(tc.a, ifaces, "eth0")
			if tc.err != nil {
				if err == nil || (tc.err != errAny && !errors.Is(err, tc.err)) {
					t.Fatalf("want error %v, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var points []string
			for _, tg := range ts {
				points = append(points, tg.Point)
				if k := attach.KindOfPoint(tg.Point); k != tg.Kind {
					t.Errorf("KindOfPoint(%s) = %s, want %s", tg.Point, k, tg.Kind)
				}
				if attach.PerInterface(tg.Kind) && tg.Interface.Index == 0 {
					t.Errorf("%s has no ifindex", tg.Point)
				}
			}
			if len(points) != len(tc.points) {
				t.Fatalf("points %v, want %v", points, tc.points)
			}
			for i := range points {
				if points[i] != tc.points[i] {
					t.Fatalf("points %v, want %v", points, tc.points)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

func ptr[T any](v T) *T { return &v }

func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name string
		ps   ebpf.ProgramSpec
		a    v1alpha1.ProgramAttachment
		// attachTo and attachType expected after Prepare; mismatch when an error is expected.
		attachTo   string
		attachType ebpf.AttachType
		mismatch   bool
	}{
		{name: "xdp", ps: ebpf.ProgramSpec{Type: ebpf.XDP}, a: v1alpha1.ProgramAttachment{XDP: &v1alpha1.XDPAttach{}}},
		{name: "xdp program on tc", ps: ebpf.ProgramSpec{Type: ebpf.XDP}, a: v1alpha1.ProgramAttachment{TC: &v1alpha1.TCAttach{}}, mismatch: true},
		{name: "fentry target", ps: ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry, AttachTo: "old"},
			a: v1alpha1.ProgramAttachment{Fentry: &v1alpha1.FunctionAttach{Function: "tcp_connect"}}, attachTo: "tcp_connect", attachType: ebpf.AttachTraceFEntry},
		{name: "fexit program as fentry", ps: ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFExit},
			a: v1alpha1.ProgramAttachment{Fentry: &v1alpha1.FunctionAttach{Function: "f"}}, mismatch: true},
		{name: "tp_btf target", ps: ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "sys_enter"},
			a: v1alpha1.ProgramAttachment{RawTracepoint: &v1alpha1.RawTracepointAttach{Name: "sched_switch"}}, attachTo: "sched_switch", attachType: ebpf.AttachTraceRawTp},
		{name: "cgroup expected attach type", ps: ebpf.ProgramSpec{Type: ebpf.CGroupSKB, AttachType: ebpf.AttachCGroupInetEgress},
			a: v1alpha1.ProgramAttachment{Cgroup: &v1alpha1.CgroupAttach{Path: "/x", AttachType: "ingress"}}, attachType: ebpf.AttachCGroupInetIngress},
		{name: "cgroup_skb on connect4", ps: ebpf.ProgramSpec{Type: ebpf.CGroupSKB},
			a: v1alpha1.ProgramAttachment{Cgroup: &v1alpha1.CgroupAttach{Path: "/x", AttachType: "connect4"}}, mismatch: true},
		{name: "uprobe is a kprobe program", ps: ebpf.ProgramSpec{Type: ebpf.Kprobe}, a: v1alpha1.ProgramAttachment{Uprobe: &v1alpha1.UprobeAttach{Path: "/x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.ps
			err := prepare(&ps, tc.a)
			if tc.mismatch {
				if !errors.Is(err, attach.ErrTypeMismatch) {
					t.Fatalf("want ErrTypeMismatch, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.attachTo != "" && ps.AttachTo != tc.attachTo {
				t.Errorf("AttachTo = %q, want %q", ps.AttachTo, tc.attachTo)
			}
			if tc.attachType != 0 && ps.AttachType != tc.attachType {
				t.Errorf("AttachType = %s, want %s", ps.AttachType, tc.attachType)
			}
		})
	}
}
