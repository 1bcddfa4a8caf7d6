package dataplane_test

import (
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// uprobeTarget is the function the uprobe test probes in the test binary.
//
//go:noinline
func uprobeTarget(n int) int { return n * 3 }

// sink keeps the uprobe target call from being optimised away.
var sink int

// fileOffset converts a virtual address of the running (non-PIE) binary to
// its offset in the file, through the executable PT_LOAD segment.
func fileOffset(t *testing.T, exe string, addr uintptr) int64 {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && uint64(addr) >= p.Vaddr && uint64(addr) < p.Vaddr+p.Memsz {
			return int64(uint64(addr) - p.Vaddr + p.Off)
		}
	}
	t.Fatalf("address %#x is in no executable segment of %s", addr, exe)
	return 0
}

func TestHooks(t *testing.T) {
	e := newEnv(t)
	privileged.RequireTracefs(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test strips the symbol table: probe the function by file offset.
	off := fileOffset(t, exe, reflect.ValueOf(uprobeTarget).Pointer())
	cg := filepath.Join(attach.CgroupRoot(), "bpfleet-test-"+randHex(6))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })

	iface := v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}
	for _, tc := range []struct {
		name   string
		attach v1alpha1.ProgramAttachment
		// trigger makes the program run, nil when the test cannot.
		trigger func(t *testing.T)
		// fail lists the acceptable failure reasons; empty means it must attach.
		fail []string
	}{
		{name: "xdp-native", attach: v1alpha1.ProgramAttachment{Name: kernelprog.XDPPass, XDP: &v1alpha1.XDPAttach{Interfaces: iface, Mode: v1alpha1.XDPModeNative}},
			trigger: func(t *testing.T) { e.sendUDP(t, 7000, 3) }},
		{name: "xdp-generic", attach: v1alpha1.ProgramAttachment{Name: kernelprog.XDPPass, XDP: &v1alpha1.XDPAttach{Interfaces: iface, Mode: v1alpha1.XDPModeGeneric}},
			trigger: func(t *testing.T) { e.sendUDP(t, 7000, 3) }},
		{name: "tcx-ingress", attach: v1alpha1.ProgramAttachment{Name: kernelprog.TCCount, TC: &v1alpha1.TCAttach{Interfaces: iface, Direction: v1alpha1.TCIngress, Order: v1alpha1.TCOrderFirst}},
			trigger: func(t *testing.T) { e.sendUDP(t, 7000, 3) }},
		{name: "tracepoint", attach: v1alpha1.ProgramAttachment{Name: kernelprog.Tracepoint, Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: "sys_enter_getppid"}},
			trigger: func(t *testing.T) { syscall.Getppid() }},
		{name: "raw_tp", attach: v1alpha1.ProgramAttachment{Name: kernelprog.RawTP, RawTracepoint: &v1alpha1.RawTracepointAttach{Name: "sys_enter"}},
			trigger: func(t *testing.T) { syscall.Getppid() }},
		// This kernel refuses every BTF tracing program (EPERM at load), tp_btf too.
		{name: "tp_btf", attach: v1alpha1.ProgramAttachment{Name: kernelprog.TPBTF, RawTracepoint: &v1alpha1.RawTracepointAttach{Name: "sys_enter"}},
			fail: []string{v1alpha1.ReasonNotSupported}},
		{name: "uprobe", attach: v1alpha1.ProgramAttachment{Name: kernelprog.Uprobe, Uprobe: &v1alpha1.UprobeAttach{Path: exe, Offset: &off}},
			trigger: func(t *testing.T) { sink = uprobeTarget(2) }},
		{name: "cgroup-egress", attach: v1alpha1.ProgramAttachment{Name: kernelprog.CgroupSKB, Cgroup: &v1alpha1.CgroupAttach{Path: cg, AttachType: "egress"}}},
		// This kernel has no kprobes and refuses trampolines: they must fail cleanly.
		{name: "kprobe", attach: v1alpha1.ProgramAttachment{Name: kernelprog.Kprobe, Kprobe: &v1alpha1.KprobeAttach{Function: "do_sys_openat2"}},
			fail: []string{v1alpha1.ReasonNotSupported, v1alpha1.ReasonAttachFailed}},
		{name: "fentry", attach: v1alpha1.ProgramAttachment{Name: kernelprog.Fentry, Fentry: &v1alpha1.FunctionAttach{Function: "do_sys_openat2"}},
			fail: []string{v1alpha1.ReasonNotSupported, v1alpha1.ReasonAttachFailed}},
		{name: "fexit", attach: v1alpha1.ProgramAttachment{Name: kernelprog.Fexit, Fexit: &v1alpha1.FunctionAttach{Function: "do_sys_openat2"}},
			fail: []string{v1alpha1.ReasonNotSupported, v1alpha1.ReasonAttachFailed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.open(t)
			uid := "hook-" + tc.name + "-" + randHex(3)
			ds := apiDesired{Name: tc.name, UID: types.UID(uid), Digest: "sha256:1", Bundle: bundle(t, "sha256:1", kernelprog.Object),
				Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{tc.attach}}}
			st := one(t, d.Apply(context.Background(), parsed(ds)), uid)
			t.Logf("%s: %s %s %q", st.AttachPoint, st.State, st.Reason, st.Message)
			if len(tc.fail) > 0 {
				if st.State != dataplane.StateFailed || !slices.Contains(tc.fail, st.Reason) || st.Message == "" {
					t.Fatalf("want Failed with one of %v and a message, got %s/%s %q", tc.fail, st.State, st.Reason, st.Message)
				}
				// Nothing half-attached stays behind once the spec drops it.
				d.Apply(context.Background(), nil)
				return
			}
			wantAttached(t, st)
			if tc.trigger != nil {
				before := e.counter(t, uid, 0)
				tc.trigger(t)
				if after := e.counter(t, uid, 0); after <= before {
					t.Fatalf("program did not run: counter %d -> %d", before, after)
				}
			}
			if got := d.Apply(context.Background(), nil); len(got) != 0 {
				t.Fatalf("states left after delete: %+v", got)
			}
		})
	}
}
