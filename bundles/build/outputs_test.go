package build_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/format"
)

// TestBuildDeclaresOutputs: the shipped tracers' outputs reach the manifest
// with their record sizes from BTF, and a bundle.yaml naming a record or
// map the object lacks, or a map that is no ring buffer, or a drop counter
// that is no array index, is refused.
func TestBuildDeclaresOutputs(t *testing.T) {
	for _, tt := range []struct {
		dir  string
		want format.Output
	}{
		{"exectrace", format.Output{Map: "exec_events", Record: "exec_event", RecordSize: 296, Drops: format.DropCounter{Map: "exec_stats", Index: 1}}},
		{"openfilter", format.Output{Map: "open_events", Record: "open_event", RecordSize: 296, Drops: format.DropCounter{Map: "open_stats", Index: 2}}},
	} {
		res, err := build.Build(context.Background(), filepath.Join("..", "..", "bpf", tt.dir), build.Options{LayoutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Manifest.Outputs) != 1 || res.Manifest.Outputs[0] != tt.want {
			t.Errorf("%s: outputs %+v, want [%+v]", tt.dir, res.Manifest.Outputs, tt.want)
		}
	}

	tests := []struct {
		name, old, new string
		msg            string // text the error must contain
	}{
		{"record not in BTF", "record: exec_event", "record: exec_evnt", `record "exec_evnt": no struct of that name`},
		{"map not in the object", "map: exec_events", "map: exec_eventz", `map "exec_eventz" is not in any object`},
		{"map is no ring buffer", "map: exec_events,", "map: exec_stats,", `"exec_stats" is a percpuarray, not one of ringbuf, perfeventarray`},
		{"drop counter not in maps", "drops: {map: exec_stats", "drops: {map: exec_statz", `outputs[0].drops.map "exec_statz" is not in maps`},
		{"drop counter no array", "drops: {map: exec_stats", "drops: {map: exec_events", `outputs[0].drops.map "exec_events" is a ringbuf, not one of array, percpuarray`},
		{"drop counter index out of range", "index: 1}", "index: 2}", `outputs[0].drops.index is 2, "exec_stats" has 2 entries`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, filepath.Join("..", "..", "bpf", "exectrace"))
			editSpec(t, dir, tt.old, tt.new)
			_, err := build.Build(context.Background(), dir, build.Options{LayoutDir: t.TempDir()})
			if !errors.Is(err, bundles.ErrBundleInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Build: %v, want ErrBundleInvalid with %q", err, tt.msg)
			}
		})
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, e.Name()), string(data))
	}
	return dst
}
