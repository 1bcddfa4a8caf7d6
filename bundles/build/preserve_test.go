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
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestBuildPreserve marks a map preserve in bundle.yaml: the manifest
// carries it, and a map name no object declares, or a map kind whose
// contents cannot outlive a version (a ring buffer), is refused.
func TestBuildPreserve(t *testing.T) {
	t.Run("marked", func(t *testing.T) {
		dir := testbundle.Dir(t, testbundle.Source{})
		appendSpec(t, dir, "maps:\n  - {name: rule_hits, preserve: true}\n")
		res, err := build.Build(context.Background(), dir, build.Options{LayoutDir: t.TempDir()})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		mp, ok := res.Manifest.Map(testbundle.MetricMap)
		if !ok || !mp.Preserve {
			t.Fatalf("map %s = %+v, want preserve", testbundle.MetricMap, mp)
		}
		plain, err := build.Build(context.Background(), testbundle.Dir(t, testbundle.Source{}), build.Options{LayoutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if plain.Digest == res.Digest {
			t.Fatal("preserve did not change the digest: the manifest does not carry it")
		}
		if mp, _ := plain.Manifest.Map(testbundle.MetricMap); mp.Preserve {
			t.Fatal("a map not listed is preserved")
		}
	})
	for _, tc := range []struct {
		name, dir, maps, msg string
	}{
		{name: "map not in the ELF", maps: "maps:\n  - {name: rule_counts, preserve: true}\n",
			msg: `maps[0]: map "rule_counts" is not in any object (maps: rule_hits)`},
		{name: "duplicate", maps: "maps:\n  - {name: rule_hits, preserve: true}\n  - {name: rule_hits}\n",
			msg: `maps[1].name: duplicate map "rule_hits"`},
		{name: "ring buffer", dir: filepath.Join("..", "..", "bpf", "exectrace"), maps: "maps:\n  - {name: exec_events, preserve: true}\n",
			msg: `maps[0]: map "exec_events" is a ringbuf, which cannot be preserved across versions`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testbundle.Dir(t, testbundle.Source{})
			if tc.dir != "" {
				dir = copyDir(t, tc.dir)
			}
			appendSpec(t, dir, tc.maps)
			layout := t.TempDir()
			_, err := build.Build(context.Background(), dir, build.Options{LayoutDir: layout})
			if !errors.Is(err, bundles.ErrBundleInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Build() = %v, want ErrBundleInvalid mentioning %q", err, tc.msg)
			}
			if entries, _ := os.ReadDir(layout); len(entries) != 0 {
				t.Errorf("a failed build wrote %d entries into the layout", len(entries))
			}
		})
	}
}

// TestManifestRefusesPreservedStream: a manifest written by hand (not by
// build) that preserves a ring buffer is refused by every reader.
func TestManifestRefusesPreservedStream(t *testing.T) {
	dir := copyDir(t, filepath.Join("..", "..", "bpf", "exectrace"))
	res, err := build.Build(context.Background(), dir, build.Options{LayoutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m := *res.Manifest
	m.Maps = append([]format.Map(nil), m.Maps...)
	for i := range m.Maps {
		m.Maps[i].Preserve = true
	}
	_, err = m.Marshal()
	if !errors.Is(err, bundles.ErrBundleInvalid) || !strings.Contains(err.Error(), "cannot be preserved") {
		t.Fatalf("Marshal() = %v, want a refused preserve", err)
	}
}

func appendSpec(t *testing.T, dir, text string) {
	t.Helper()
	path := filepath.Join(dir, build.SpecFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, strings.TrimRight(string(data), "\n")+"\n"+text)
}
