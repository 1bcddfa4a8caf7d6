package caps_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// Environment of a scenario process: the parent (full root) prepares
// everything a scenario needs but the agent would not do itself — network
// namespace, veth, cgroup — and passes it down here.
const (
	envScenario = "BPFLEET_CAPS_SCENARIO" // scenario name; set only in the child
	envRoot     = "BPFLEET_CAPS_ROOT"     // pin root (fresh per run)
	envState    = "BPFLEET_CAPS_STATE"    // state dir (fresh per run)
	envIface    = "BPFLEET_CAPS_IFACE"    // veth end in the child's network namespace
	envCgroup   = "BPFLEET_CAPS_CGROUP"   // cgroup v2 directory made by the parent
	envPodPID   = "BPFLEET_CAPS_POD_PID"  // a process with every capability in a network namespace of its own: a pod
)

// scenario is one thing the agent does on a node, run start to finish by
// the agent's own dataplane: open (mount bpffs when missing, re-adopt), load,
// attach, pin, optionally restart and re-adopt, detach, close.
type scenario struct {
	name string
	// attach is the program and hook, nil when opening the dataplane is the
	// whole scenario.
	attach func(c childEnv) v1alpha1.ProgramAttachment
	// stats opens the dataplane with run-time statistics on (BPF_ENABLE_STATS).
	stats bool
	// readopt closes the dataplane after the attach and opens it again: the
	// pinned link must be re-adopted, not reloaded.
	readopt bool
	// noBPFFS runs the scenario in a private mount namespace without bpffs
	// at /sys/fs/bpf, so the dataplane has to mount it.
	noBPFFS bool
	// inPod attaches inside the pod's network namespace (envPodPID), found
	// through /proc as the agent finds a pod's.
	inPod bool
}

// scenarios cover every hook kind the agent attaches on this kernel (kprobe,
// fentry and fexit are refused by this kernel whatever the capabilities, see
// nodeagent/dataplane TestHooks), stats, pin and re-adopt, and mounting bpffs.
var scenarios = []scenario{
	{name: "xdp", attach: func(c childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.XDPPass, XDP: &v1alpha1.XDPAttach{
			Interfaces: v1alpha1.InterfaceSelector{Names: []string{c.iface}}, Mode: v1alpha1.XDPModeNative}}
	}},
	{name: "tcx", attach: func(c childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.TCCount, TC: &v1alpha1.TCAttach{
			Interfaces: v1alpha1.InterfaceSelector{Names: []string{c.iface}}, Direction: v1alpha1.TCIngress}}
	}},
	{name: "tracepoint", attach: func(childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.Tracepoint, Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: "sys_enter_getppid"}}
	}},
	{name: "raw_tp", attach: func(childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.RawTP, RawTracepoint: &v1alpha1.RawTracepointAttach{Name: "sys_enter"}}
	}},
	{name: "uprobe", attach: func(childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.Uprobe, Uprobe: &v1alpha1.UprobeAttach{Path: "/bin/bash", Symbol: "readline"}}
	}},
	{name: "cgroup", attach: func(c childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.CgroupSKB, Cgroup: &v1alpha1.CgroupAttach{Path: c.cgroup, AttachType: "egress"}}
	}},
	{name: "readopt", readopt: true, attach: func(c childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.XDPPass, XDP: &v1alpha1.XDPAttach{
			Interfaces: v1alpha1.InterfaceSelector{Names: []string{c.iface}}, Mode: v1alpha1.XDPModeGeneric}}
	}},
	{name: "stats", stats: true},
	{name: "mount-bpffs", noBPFFS: true},
	{name: "pod", inPod: true, attach: func(childEnv) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Name: kernelprog.XDPPass, XDP: &v1alpha1.XDPAttach{
			Interfaces: v1alpha1.InterfaceSelector{Names: []string{"lo"}}, Mode: v1alpha1.XDPModeGeneric, Pods: &v1alpha1.PodSelector{}}}
	}},
}

// childEnv is what the parent passed down.
type childEnv struct {
	root, state, iface, cgroup, podPID string
}

// runScenario runs the named scenario in this (child) process.
func runScenario(name string) error {
	var sc *scenario
	for i := range scenarios {
		if scenarios[i].name == name {
			sc = &scenarios[i]
		}
	}
	if sc == nil {
		return fmt.Errorf("run scenario %q: %w", name, errUnknownScenario)
	}
	c := childEnv{root: os.Getenv(envRoot), state: os.Getenv(envState), iface: os.Getenv(envIface), cgroup: os.Getenv(envCgroup), podPID: os.Getenv(envPodPID)}
	return sc.run(context.Background(), c)
}

var errUnknownScenario = errors.New("unknown scenario")

func (sc *scenario) run(ctx context.Context, c childEnv) error {
	opts := dataplane.Options{BPFFSRoot: c.root, StateDir: c.state, Log: logr.Discard(), BootID: "caps", Stats: sc.stats}
	d, err := dataplane.New(ctx, opts)
	if err != nil {
		return fmt.Errorf("open dataplane: %w", err)
	}
	defer func() { _ = d.Close() }()
	if sc.noBPFFS {
		var st unix.Statfs_t
		if err := unix.Statfs(bpffs.BPFFSMount, &st); err != nil || int64(st.Type) != unix.BPF_FS_MAGIC {
			return fmt.Errorf("check bpffs mounted: type %#x, %v", st.Type, err)
		}
	}
	if sc.attach == nil {
		return nil
	}
	uid := "caps-" + sc.name
	spec := v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{sc.attach(c)}}
	ds := dataplane.Desired{Name: uid, UID: types.UID(uid), Generation: 1, Digest: "sha256:caps"}
	if ds.Bundle, err = kernelprog.NewBundle(ds.Digest, kernelprog.Object); err != nil {
		return fmt.Errorf("build bundle: %w", err)
	}
	var pods map[string][]attach.PodScope
	if sc.inPod {
		nl := netwatch.NewNetlink("/proc/" + c.podPID + "/ns/net")
		ifaces, err := nl.Interfaces()
		if err != nil {
			return fmt.Errorf("list the pod's interfaces: %w", err)
		}
		pods = map[string][]attach.PodScope{kernelprog.XDPPass: {{Name: "caps/pod", Netns: nl, Interfaces: ifaces}}}
	}
	ds.Spec = hookspec.Spec(spec, pods) // as the agent's controller does
	first, err := attached(d.Apply(ctx, []dataplane.Desired{ds}))
	if err != nil {
		return err
	}
	if sc.readopt {
		if err := d.Close(); err != nil {
			return fmt.Errorf("close dataplane: %w", err)
		}
		if d, err = dataplane.New(ctx, opts); err != nil {
			return fmt.Errorf("reopen dataplane: %w", err)
		}
		again, err := attached(d.Apply(ctx, []dataplane.Desired{ds}))
		if err != nil {
			return fmt.Errorf("re-adopt: %w", err)
		}
		if again.ID != first.ID || again.LinkID != first.LinkID {
			return fmt.Errorf("re-adopt: reloaded (program %d -> %d, link %d -> %d)", first.ID, again.ID, first.LinkID, again.LinkID)
		}
	}
	if left := d.Apply(ctx, nil); len(left) != 0 {
		return fmt.Errorf("detach: %d states left: %s", len(left), left[0].Message)
	}
	return nil
}

// attached returns the only state, or an error carrying the kernel's
// message when it is not attached.
func attached(states []dataplane.ProgramState) (dataplane.ProgramState, error) {
	if len(states) != 1 {
		return dataplane.ProgramState{}, fmt.Errorf("apply: want 1 state, got %d", len(states))
	}
	st := states[0]
	if st.Pods != nil {
		// A program in pods reports one row for all of them, without a
		// link id of its own.
		if st.State != dataplane.StateAttached || st.ID == 0 || st.Pods.Attached == 0 {
			return st, fmt.Errorf("apply %s: %s/%s: %s", st.AttachPoint, st.State, st.Reason, strings.TrimSpace(st.Message))
		}
		return st, nil
	}
	if st.State != dataplane.StateAttached || st.ID == 0 || st.LinkID == 0 {
		return st, fmt.Errorf("apply %s: %s/%s: %s", st.AttachPoint, st.State, st.Reason, strings.TrimSpace(st.Message))
	}
	return st, nil
}
