package attach

import "strings"

// KindOfPoint returns the kind of an attach point string (as Target.Point
// writes it), or "" when unknown.
func KindOfPoint(point string) Kind {
	prefix, _, _ := strings.Cut(point, "/")
	switch prefix {
	case "xdp", "xdp-generic":
		return KindXDP
	case "tcx-ingress", "tcx-egress":
		return KindTCX
	case "tracepoint":
		return KindTracepoint
	case "raw_tp":
		return KindRawTP
	case "uprobe", "uretprobe":
		return KindUprobe
	case "cgroup":
		return KindCgroup
	case "kprobe", "kretprobe":
		return KindKprobe
	case "fentry":
		return KindFentry
	case "fexit":
		return KindFexit
	}
	return ""
}
