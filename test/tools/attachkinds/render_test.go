package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestGeneratedFileMatchesKinds fails when the committed
// api/v1alpha1/zz_generated.attachkinds.go is not what the table of attach
// kinds renders to: a kind was added or changed without make generate.
func TestGeneratedFileMatchesKinds(t *testing.T) {
	repo, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(repo, output))
	if err != nil {
		t.Fatalf("%s missing: run make generate", output)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the table of attach kinds renders to: run make generate", output)
	}
}
