package format

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bundles"
)

// programTypeNames are the kernel's names (BPF_PROG_TYPE_* in lower case).
var programTypeNames = map[ebpf.ProgramType]string{
	ebpf.SocketFilter:          "socket_filter",
	ebpf.Kprobe:                "kprobe",
	ebpf.SchedCLS:              "sched_cls",
	ebpf.SchedACT:              "sched_act",
	ebpf.TracePoint:            "tracepoint",
	ebpf.XDP:                   "xdp",
	ebpf.PerfEvent:             "perf_event",
	ebpf.CGroupSKB:             "cgroup_skb",
	ebpf.CGroupSock:            "cgroup_sock",
	ebpf.LWTIn:                 "lwt_in",
	ebpf.LWTOut:                "lwt_out",
	ebpf.LWTXmit:               "lwt_xmit",
	ebpf.SockOps:               "sock_ops",
	ebpf.SkSKB:                 "sk_skb",
	ebpf.CGroupDevice:          "cgroup_device",
	ebpf.SkMsg:                 "sk_msg",
	ebpf.RawTracepoint:         "raw_tracepoint",
	ebpf.CGroupSockAddr:        "cgroup_sock_addr",
	ebpf.LWTSeg6Local:          "lwt_seg6local",
	ebpf.LircMode2:             "lirc_mode2",
	ebpf.SkReuseport:           "sk_reuseport",
	ebpf.FlowDissector:         "flow_dissector",
	ebpf.CGroupSysctl:          "cgroup_sysctl",
	ebpf.RawTracepointWritable: "raw_tracepoint_writable",
	ebpf.CGroupSockopt:         "cgroup_sockopt",
	ebpf.Tracing:               "tracing",
	ebpf.StructOps:             "struct_ops",
	ebpf.Extension:             "ext",
	ebpf.LSM:                   "lsm",
	ebpf.SkLookup:              "sk_lookup",
	ebpf.Syscall:               "syscall",
	ebpf.Netfilter:             "netfilter",
}

// ProgramTypeName is the manifest name of a program type: the kernel's
// BPF_PROG_TYPE_* suffix in lower case (xdp, sched_cls, tracepoint, ...).
func ProgramTypeName(t ebpf.ProgramType) (string, error) {
	name, ok := programTypeNames[t]
	if !ok {
		return "", fmt.Errorf("%w: unsupported program type %s", bundles.ErrBundleInvalid, t)
	}
	return name, nil
}

// ParseProgramType is the inverse of ProgramTypeName.
func ParseProgramType(name string) (ebpf.ProgramType, error) {
	for t, n := range programTypeNames {
		if n == name {
			return t, nil
		}
	}
	return ebpf.UnspecifiedProgram, fmt.Errorf("%w: unknown program type %q", bundles.ErrBundleInvalid, name)
}

// maxLinuxAttachType is the highest cilium/ebpf Linux AttachType we name.
const maxLinuxAttachType = ebpf.AttachNetkitPeer

// cgroupInetIngress names attach type 0 where it means BPF_CGROUP_INET_INGRESS
// (cilium/ebpf calls 0 AttachNone, whose String is "None").
const cgroupInetIngress = "CGroupInetIngress"

// AttachTypeName is the manifest name of an attach type: the cilium/ebpf
// constant without its Attach prefix (TraceFEntry, CGroupInetEgress, XDP,
// ...). Attach type 0 is "CGroupInetIngress" for cgroup_skb programs and ""
// (none needed) for every other program type.
func AttachTypeName(progType ebpf.ProgramType, t ebpf.AttachType) string {
	if t == ebpf.AttachNone {
		if progType == ebpf.CGroupSKB {
			return cgroupInetIngress
		}
		return ""
	}
	return t.String()
}

// ParseAttachType is the inverse of AttachTypeName for a non-empty name.
func ParseAttachType(name string) (ebpf.AttachType, error) {
	if name == cgroupInetIngress {
		return ebpf.AttachCGroupInetIngress, nil
	}
	for t := ebpf.AttachType(1); t <= maxLinuxAttachType; t++ {
		if t.String() == name {
			return t, nil
		}
	}
	return ebpf.AttachNone, fmt.Errorf("%w: unknown attach type %q", bundles.ErrBundleInvalid, name)
}

// MapTypeName is the manifest name of a map type: the cilium/ebpf MapType
// name in lower case (hash, array, lpmtrie, ringbuf, ...).
func MapTypeName(t ebpf.MapType) string {
	return strings.ToLower(t.String())
}
