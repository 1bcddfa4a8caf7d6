// Package probe answers, once per process, whether this kernel can run a
// program type or attach kind, in cilium/ebpf's ErrNotSupported style.
package probe

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ErrNotSupported is wrapped by every probe that finds a feature missing.
var ErrNotSupported = ebpf.ErrNotSupported

var programTypes = map[string]ebpf.ProgramType{
	"xdp":              ebpf.XDP,
	"sched_cls":        ebpf.SchedCLS,
	"tracepoint":       ebpf.TracePoint,
	"raw_tracepoint":   ebpf.RawTracepoint,
	"kprobe":           ebpf.Kprobe,
	"tracing":          ebpf.Tracing,
	"cgroup_skb":       ebpf.CGroupSKB,
	"cgroup_sock":      ebpf.CGroupSock,
	"cgroup_sock_addr": ebpf.CGroupSockAddr,
}

var (
	kprobeOnce sync.Once
	kprobeErr  error
)

// ProgramType reports whether the kernel loads programs of type t (cached
// by cilium/ebpf).
func ProgramType(t ebpf.ProgramType) error {
	err := features.HaveProgramType(t)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotSupported):
		return fmt.Errorf("program type %s: %w", t, err)
	case errors.Is(err, unix.EPERM) && os.Geteuid() == 0:
		// Root refused a trivial program of the type: the kernel will not
		// run it (e.g. BTF tracing programs without trampoline support).
		return fmt.Errorf("program type %s: %w: %w", t, ErrNotSupported, err)
	default:
		return fmt.Errorf("program type %s: %w", t, err)
	}
	return nil
}

// Kprobes reports whether the kernel has kprobes (CONFIG_KPROBES): the
// kprobe PMU or tracefs kprobe_events.
func Kprobes() error {
	kprobeOnce.Do(func() {
		for _, p := range []string{"/sys/bus/event_source/devices/kprobe/type", "/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
			if _, err := os.Stat(p); err == nil {
				return
			}
		}
		kprobeErr = fmt.Errorf("kprobes (no kprobe PMU, no kprobe_events): %w", ErrNotSupported)
	})
	return kprobeErr
}

// TCX reports whether the kernel has tcx hooks (6.6+), by querying the tcx
// ingress hook of the loopback interface: no program is attached.
var TCX = sync.OnceValue(func() error {
	_, err := link.QueryPrograms(link.QueryOptions{Target: 1, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotSupported) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("tcx: %w: %w", ErrNotSupported, err)
	}
	return fmt.Errorf("tcx: %w", err)
})

// Uprobes reports whether the kernel has the uprobe PMU or uprobe_events.
func Uprobes() error {
	for _, p := range []string{"/sys/bus/event_source/devices/uprobe/type", "/sys/kernel/tracing/uprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("uprobes: %w", ErrNotSupported)
}

// BTF reports whether the kernel exposes its BTF (/sys/kernel/btf/vmlinux).
func BTF() error {
	if _, err := btf.LoadKernelSpec(); err != nil {
		if errors.Is(err, ErrNotSupported) {
			return err
		}
		return fmt.Errorf("kernel BTF: %v: %w", err, ErrNotSupported)
	}
	return nil
}

// Feature is one capability probed.
type Feature struct {
	// Name is e.g. program/xdp or link/tcx.
	Name string
	// Supported tells whether this kernel has it.
	Supported bool
}

// Features probes every capability bpfleet may use, sorted by name.
func Features() []Feature {
	var out []Feature
	for name, t := range programTypes {
		out = append(out, Feature{Name: "program/" + name, Supported: ProgramType(t) == nil})
	}
	out = append(out,
		Feature{Name: "link/kprobe", Supported: Kprobes() == nil},
		Feature{Name: "link/tcx", Supported: TCX() == nil},
		Feature{Name: "link/uprobe", Supported: Uprobes() == nil},
		Feature{Name: "btf/vmlinux", Supported: BTF() == nil},
	)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
