package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestChartMatchesKustomize fails when config/helm/bpfleet is not what
// config/default renders to: the chart and kustomize drifted (run make
// generate and commit).
func TestChartMatchesKustomize(t *testing.T) {
	repo, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := render(repo)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repo, chartDir)
	var onDisk []string
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			onDisk = append(onDisk, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(onDisk)
	for _, name := range onDisk {
		if _, ok := want[name]; !ok {
			t.Errorf("%s/%s is not rendered from config/default: remove it or run make generate", chartDir, name)
		}
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s/%s missing: run make generate", chartDir, name)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s/%s differs from what config/default renders to: run make generate", chartDir, name)
		}
	}
}

// TestRenderRefusesUnknownShapes: a config/default without the objects the
// chart puts values in fails generation instead of dropping a value.
func TestRenderRefusesUnknownShapes(t *testing.T) {
	tmp := t.TempDir()
	// A tree with the CRDs only: no operator, agent or registries config.
	if err := os.MkdirAll(filepath.Join(tmp, "config", "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "config", "default", "kustomization.yaml"), []byte("resources: [ns.yaml]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "config", "default", "ns.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: bpfleet-system}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := render(tmp); err == nil {
		t.Fatal("render of a tree without the operator and agent succeeded")
	}
}
