package dataplane

import (
	"errors"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// TestParseRefusesAManifestThatMisstatesTheELF: trust policies judge the
// manifest's program types, the kernel loads the ELF. A manifest that says
// raw_tracepoint over a tp_btf (tracing) program, or names another cgroup
// type than the object holds, is refused before anything is loaded.
func TestParseRefusesAManifestThatMisstatesTheELF(t *testing.T) {
	rawtp := v1alpha1.ProgramAttachment{Name: kernelprog.TPBTF, RawTracepoint: &v1alpha1.RawTracepointAttach{Name: "sys_enter"}}
	cgroup := v1alpha1.ProgramAttachment{Name: kernelprog.CgroupSKB, Cgroup: &v1alpha1.CgroupAttach{Path: "/", AttachType: "egress"}}
	tests := []struct {
		name   string
		attach v1alpha1.ProgramAttachment // the spec's attach block
		lie    func(p *v1alpha1.ProgramAttachment, b *kernelprog.Bundle)
		want   error // nil: parsed
	}{
		{name: "true manifest", attach: cgroup, lie: func(*v1alpha1.ProgramAttachment, *kernelprog.Bundle) {}},
		{name: "tracing declared raw_tracepoint", attach: rawtp, want: bundles.ErrManifestMismatch,
			lie: func(pa *v1alpha1.ProgramAttachment, b *kernelprog.Bundle) {
				p, _ := b.Program(pa.Name)
				p.Type, p.AttachType = "raw_tracepoint", ""
			}},
		{name: "another cgroup type declared", attach: cgroup, want: bundles.ErrManifestMismatch,
			lie: func(pa *v1alpha1.ProgramAttachment, b *kernelprog.Bundle) {
				p, _ := b.Program(pa.Name)
				p.Type = "cgroup_device"
			}},
		{name: "another attach type declared", attach: cgroup, want: bundles.ErrManifestMismatch,
			lie: func(pa *v1alpha1.ProgramAttachment, b *kernelprog.Bundle) {
				p, _ := b.Program(pa.Name)
				p.AttachType = "CGroupDevice"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := kernelprog.NewBundle("sha256:1111111111111111111111111111111111111111111111111111111111111111", kernelprog.Object)
			if err != nil {
				t.Fatal(err)
			}
			tt.lie(&tt.attach, b)
			ds := &Desired{Name: "p", UID: "uid", Digest: b.Digest, Bundle: b, Spec: Spec{Programs: []Program{{Name: tt.attach.Name}}}}
			_, _, _, err = (&Dataplane{}).parse(ds)
			if !errors.Is(err, tt.want) {
				t.Fatalf("parse = %v, want %v", err, tt.want)
			}
			if tt.want != nil && reasonFor(err, "") != v1alpha1.ReasonBundleInvalid {
				t.Errorf("reason %q, want %s", reasonFor(err, ""), v1alpha1.ReasonBundleInvalid)
			}
		})
	}
}
