package deploy_test

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/build"
)

// TestSamplesNameShippedPrograms: every sample BpfProgram names a bundle the
// repository ships (by name and version, as bpfleet local pushes them) and
// only programs that bundle holds, so a user applying a sample against
// `bpfleet local` gets programs attached, not ProgramNotInBundle.
func TestSamplesNameShippedPrograms(t *testing.T) {
	specs, err := filepath.Glob(filepath.Join(configDir(t, ".."), "bpf", "*", build.SpecFile))
	if err != nil || len(specs) == 0 {
		t.Fatalf("find shipped bundles: %v", err)
	}
	shipped := map[string]*build.Spec{} // name:version → spec
	for _, f := range specs {
		s, err := build.ReadSpec(filepath.Dir(f))
		if err != nil {
			t.Fatal(err)
		}
		shipped[s.Name+":"+s.Version] = s
	}
	files, err := filepath.Glob(filepath.Join(configDir(t, "samples"), "bpfleet_v1alpha1_bpfprogram_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("find samples: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			var p v1.BpfProgram
			if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			t.Run(p.Name, func(t *testing.T) {
				ref := p.Spec.Bundle.Image
				spec, ok := shipped[path.Base(ref)]
				if !ok {
					t.Fatalf("%s names %s, which no bpf/*/bundle.yaml ships (name:version)", f, ref)
				}
				var names []string
				for _, sp := range spec.Programs {
					names = append(names, sp.Name)
				}
				for _, prog := range p.Spec.Programs {
					if !slices.Contains(names, prog.Name) {
						t.Errorf("program %s is not in bundle %s (has %v)", prog.Name, spec.Name, names)
					}
				}
			})
		}
	}
}
