package build_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bpfleet/bpfleet/bundles/build"
)

// TestShippedBundlesBuild builds every bundle.yaml under bpf/, so a change
// to a program or its bundle.yaml that the format refuses fails here.
func TestShippedBundlesBuild(t *testing.T) {
	specs, err := filepath.Glob(filepath.Join("..", "..", "bpf", "*", build.SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) == 0 {
		t.Fatal("no bpf/*/bundle.yaml found")
	}
	for _, spec := range specs {
		dir := filepath.Dir(spec)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res, err := build.Build(context.Background(), dir, build.Options{LayoutDir: t.TempDir(), Tag: "test"})
			if err != nil {
				t.Fatalf("build %s: %v", dir, err)
			}
			for _, p := range res.Manifest.Programs {
				if p.Type == "" || p.Section == "" || p.License == "" {
					t.Errorf("program %s lacks ELF-derived fields: %+v", p.Name, p)
				}
			}
		})
	}
}
