package dataplane_test

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestShippedBundles builds each shipped bundle of bpf/ into an OCI layout,
// reads it back as a *format.Bundle and runs it through the dataplane.
func TestShippedBundles(t *testing.T) {
	e := newEnv(t)
	privileged.RequireTracefs(t)
	cg := filepath.Join(attach.CgroupRoot(), "bpfleet-test-"+randHex(6))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })
	iface := v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}
	for _, tc := range []struct {
		pkg    string
		attach v1alpha1.ProgramAttachment
	}{
		{pkg: "xdpfilter", attach: v1alpha1.ProgramAttachment{Name: "xdp_pod_filter", XDP: &v1alpha1.XDPAttach{Interfaces: iface}}},
		{pkg: "xdplb", attach: v1alpha1.ProgramAttachment{Name: "xdp_lb", XDP: &v1alpha1.XDPAttach{Interfaces: iface, Mode: v1alpha1.XDPModeGeneric}}},
		{pkg: "exectrace", attach: v1alpha1.ProgramAttachment{Name: "exec_trace", Tracepoint: &v1alpha1.TracepointAttach{Group: "sched", Name: "sched_process_exec"}}},
		{pkg: "openfilter", attach: v1alpha1.ProgramAttachment{Name: "open_filter", Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: "sys_enter_openat"}}},
		{pkg: "uprobecount", attach: v1alpha1.ProgramAttachment{Name: "uprobe_count", Uprobe: &v1alpha1.UprobeAttach{Path: "/bin/bash", Symbol: "readline"}}},
		{pkg: "cgroupcount", attach: v1alpha1.ProgramAttachment{Name: "cgroup_skb_ingress", Cgroup: &v1alpha1.CgroupAttach{Path: cg, AttachType: "ingress"}}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			b, err := kernelprog.BuildBundle(ctx, filepath.Join("..", "..", "bpf", tc.pkg), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			d := e.open(t)
			uid := "shipped-" + tc.pkg + "-" + randHex(3)
			ds := apiDesired{Name: tc.pkg, UID: types.UID(uid), Digest: b.Digest, Bundle: b,
				Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{tc.attach}}}
			st := one(t, d.Apply(ctx, parsed(ds)), uid)
			wantAttached(t, st)
			t.Logf("%s %s: program %d (%s, %d insns verified), link %d", tc.pkg, st.AttachPoint, st.ID, st.Type, st.VerifiedInsns, st.LinkID)
			if got := d.Apply(ctx, nil); len(got) != 0 {
				t.Fatalf("states left: %+v", got)
			}
		})
	}
}
