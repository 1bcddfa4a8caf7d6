// Command helmchart renders config/helm/bpfleet from the kustomize tree
// config/default, so the chart and kustomize cannot drift: `make generate`
// runs it, and its test fails when the committed chart differs from what
// it renders. Every template is a kustomize object with values put in
// (namespace, images, replicas, resources, metrics, registries config);
// CRDs go to crds/ unchanged; a few chart-only templates create what
// kustomize users create by hand (the registry Secret and CA ConfigMap, an
// allowUnsigned development policy).
//
//	go run ./test/tools/helmchart [-repo DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

func main() {
	repo := flag.String("repo", ".", "repository root")
	flag.Parse()
	files, err := render(*repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helmchart:", err)
		os.Exit(1)
	}
	dir := filepath.Join(*repo, chartDir)
	for _, sub := range []string{"templates", "crds"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			fmt.Fprintln(os.Stderr, "helmchart:", err)
			os.Exit(1)
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "helmchart:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "helmchart:", err)
			os.Exit(1)
		}
	}
}
