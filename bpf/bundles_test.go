// Package bpf_test checks that every program shipped under bpf/ is a valid
// bundle: its bundle.yaml parses, names programs and metric maps its ELF
// object holds, and builds into an OCI layout.
package bpf_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bpf/cgroupcount"
	"github.com/bpfleet/bpfleet/bpf/exectrace"
	"github.com/bpfleet/bpfleet/bpf/netfilter"
	"github.com/bpfleet/bpfleet/bpf/openfilter"
	"github.com/bpfleet/bpfleet/bpf/sklookup"
	"github.com/bpfleet/bpfleet/bpf/uprobecount"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/bpf/xdplb"
	"github.com/bpfleet/bpfleet/bundles/build"
)

func TestShippedBundles(t *testing.T) {
	tests := []struct {
		dir  string                               // package directory holding bundle.yaml
		name string                               // bundle name constant
		yaml []byte                               // embedded bundle.yaml
		spec func() (*ebpf.CollectionSpec, error) // the package's ELF spec
	}{
		{dir: "xdpfilter", name: xdpfilter.BundleName, yaml: xdpfilter.BundleYAML, spec: xdpfilter.Spec},
		{dir: "xdplb", name: xdplb.BundleName, yaml: xdplb.BundleYAML, spec: xdplb.Spec},
		{dir: "exectrace", name: exectrace.BundleName, yaml: exectrace.BundleYAML, spec: exectrace.Spec},
		{dir: "openfilter", name: openfilter.BundleName, yaml: openfilter.BundleYAML, spec: openfilter.Spec},
		{dir: "uprobecount", name: uprobecount.BundleName, yaml: uprobecount.BundleYAML, spec: uprobecount.Spec},
		{dir: "cgroupcount", name: cgroupcount.BundleName, yaml: cgroupcount.BundleYAML, spec: cgroupcount.Spec},
		{dir: "sklookup", name: sklookup.BundleName, yaml: sklookup.BundleYAML, spec: sklookup.Spec},
		{dir: "netfilter", name: netfilter.BundleName, yaml: netfilter.BundleYAML, spec: netfilter.Spec},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			s, err := build.ParseSpec(tt.yaml)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tt.name {
				t.Errorf("bundle name %q, constant says %q", s.Name, tt.name)
			}
			elf, err := tt.spec()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range s.Programs {
				if elf.Programs[p.Name] == nil {
					t.Errorf("program %q is not in the ELF object", p.Name)
				}
			}
			for _, m := range s.MetricMaps {
				if elf.Maps[m] == nil {
					t.Errorf("metric map %q is not in the ELF object", m)
				}
			}
			res, err := build.Build(context.Background(), tt.dir, build.Options{LayoutDir: filepath.Join(t.TempDir(), "layout")})
			if err != nil {
				t.Fatalf("build bundle: %v", err)
			}
			if len(res.Manifest.Programs) != len(s.Programs) {
				t.Errorf("bundle manifest has %d programs, bundle.yaml %d", len(res.Manifest.Programs), len(s.Programs))
			}
		})
	}
}
