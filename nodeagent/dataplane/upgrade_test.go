package dataplane_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf/link"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestUpgradeKinds upgrades one program of each swap style: cgroup and tcx
// links are updated in place (same link id); a tracepoint gets a new link
// attached before the old one is closed.
func TestUpgradeKinds(t *testing.T) {
	e := newEnv(t)
	privileged.RequireTracefs(t)
	cg := filepath.Join(attach.CgroupRoot(), "bpfleet-test-"+randHex(6))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })
	for _, tc := range []struct {
		name string
		a    v1alpha1.ProgramAttachment
		// inPlace tells whether the link id must survive the upgrade.
		inPlace bool
	}{
		{name: "cgroup", a: v1alpha1.ProgramAttachment{Name: kernelprog.CgroupSKB, Cgroup: &v1alpha1.CgroupAttach{Path: cg, AttachType: "egress"}}, inPlace: true},
		{name: "tcx", a: v1alpha1.ProgramAttachment{Name: kernelprog.TCCount, TC: &v1alpha1.TCAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}, Direction: v1alpha1.TCEgress}}, inPlace: true},
		{name: "tracepoint", a: v1alpha1.ProgramAttachment{Name: kernelprog.Tracepoint, Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: "sys_enter_getppid"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.open(t)
			uid := "up-" + tc.name + "-" + randHex(3)
			ds := apiDesired{Name: tc.name, UID: types.UID(uid), Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", kernelprog.Object),
				Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{tc.a}}}
			v1 := one(t, d.Apply(ctx, parsed(ds)), uid)
			wantAttached(t, v1)
			ds.Digest, ds.Bundle = "sha256:v2", bundle(t, "sha256:v2", kernelprog.Object)
			v2 := one(t, d.Apply(ctx, parsed(ds)), uid)
			wantAttached(t, v2)
			if v2.ID == v1.ID || v2.Digest != "sha256:v2" {
				t.Fatalf("not reloaded: program %d -> %d, digest %s", v1.ID, v2.ID, v2.Digest)
			}
			if tc.inPlace != (v2.LinkID == v1.LinkID) {
				t.Fatalf("link %d -> %d, in place %v", v1.LinkID, v2.LinkID, tc.inPlace)
			}
			if !tc.inPlace {
				if l, err := link.NewFromID(link.ID(v1.LinkID)); err == nil {
					l.Close()
					t.Fatalf("old link %d still exists", v1.LinkID)
				}
			}
			d.Apply(ctx, nil)
		})
	}
}

// TestCgroupAttachTypeChange moves a cgroup_skb program from egress to
// ingress: the expected attach type is fixed at load, so it is reloaded.
func TestCgroupAttachTypeChange(t *testing.T) {
	e := newEnv(t)
	cg := filepath.Join(attach.CgroupRoot(), "bpfleet-test-"+randHex(6))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })
	uid := "cgmove-" + randHex(4)
	ds := apiDesired{Name: "cg", UID: types.UID(uid), Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", kernelprog.Object),
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{Name: kernelprog.CgroupSKB,
			Cgroup: &v1alpha1.CgroupAttach{Path: cg, AttachType: "egress"}}}}}
	d := e.open(t)
	eg := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, eg)
	ds.Spec.Programs[0].Cgroup = &v1alpha1.CgroupAttach{Path: cg, AttachType: "ingress"}
	in := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, in)
	if in.ID == eg.ID || in.AttachPoint != "cgroup/ingress:"+cg {
		t.Fatalf("want a reload onto ingress, got program %d -> %d at %s", eg.ID, in.ID, in.AttachPoint)
	}
	d.Apply(ctx, nil)
}

// TestReadoptDeepUprobe re-adopts a uprobe whose path is too long for a pin
// name (as under a container's rootfs): the record resolves the hashed pin.
func TestReadoptDeepUprobe(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	for i := 0; i < 10; i++ {
		dir = filepath.Join(dir, "run-containerd-io.containerd.runtime.v2.task")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bash, err := os.ReadFile("/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bash")
	if err := os.WriteFile(bin, bash, 0o755); err != nil {
		t.Fatal(err)
	}
	uid := "deep-" + randHex(4)
	ds := apiDesired{Name: "deep", UID: types.UID(uid), Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", kernelprog.Object),
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{Name: kernelprog.Uprobe,
			Uprobe: &v1alpha1.UprobeAttach{Path: bin, Symbol: "readline"}}}}}
	d := e.open(t)
	first := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, first)
	_ = d.Close()
	d = e.open(t)
	again := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, again)
	if again.LinkID != first.LinkID || again.ID != first.ID {
		t.Fatalf("deep uprobe re-attached: link %d -> %d, program %d -> %d", first.LinkID, again.LinkID, first.ID, again.ID)
	}
	d.Apply(ctx, nil)
}
