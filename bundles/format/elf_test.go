package format_test

import (
	"errors"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

func TestCheckObjects(t *testing.T) {
	truth := format.Program{Name: kernelprog.CgroupSKB, Section: "cgroup_skb/egress", Type: "cgroup_skb",
		AttachType: "CGroupInetEgress", License: "GPL", Attach: format.AttachHint{Kind: "cgroup"}}
	tests := []struct {
		name string
		lie  func(p *format.Program) // edits the true manifest entry
		want error                   // nil: the manifest describes the object
	}{
		{name: "true", lie: func(*format.Program) {}},
		// The example: an allow-list for cgroup_skb must not admit cgroup_device.
		{name: "type", lie: func(p *format.Program) { p.Type = "cgroup_device" }, want: bundles.ErrManifestMismatch},
		{name: "attach type", lie: func(p *format.Program) { p.AttachType = "CGroupDevice" }, want: bundles.ErrManifestMismatch},
		{name: "section", lie: func(p *format.Program) { p.Section = "cgroup/dev" }, want: bundles.ErrManifestMismatch},
		{name: "license", lie: func(p *format.Program) { p.License = "MIT" }, want: bundles.ErrManifestMismatch},
		{name: "program not in the object", lie: func(p *format.Program) { p.Name = "absent" }, want: bundles.ErrManifestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parts(t, kernelprog.Object, func(m *format.Manifest, _ *ocispec.Manifest) {
				prog := truth
				prog.Object = m.Objects[0].Name
				tt.lie(&prog)
				m.Programs = []format.Program{prog}
				m.Maps, m.MetricMaps = nil, nil
			})
			b, err := format.Assemble(p)
			if err != nil {
				t.Fatal(err)
			}
			err = b.CheckObjects()
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckObjects = %v, want %v", err, tt.want)
			}
			if tt.want != nil && !errors.Is(err, bundles.ErrBundleInvalid) {
				t.Errorf("error %v does not wrap ErrBundleInvalid", err)
			}
		})
	}
}
