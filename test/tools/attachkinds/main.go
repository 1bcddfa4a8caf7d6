// Command attachkinds writes api/v1alpha1/zz_generated.attachkinds.go from
// the table of attach kinds (nodeagent/attach, one file per kind): the
// CRD's rules that name every kind (a program sets exactly one attach
// block; a trust policy's allowedAttachTypes names known hooks). So a new
// kind is its file and its CRD field, and no list to edit: `make generate`
// runs this before controller-gen, and its test fails when the committed
// file differs from what it renders.
//
//	go run ./test/tools/attachkinds [-repo DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	repo := flag.String("repo", ".", "repository root")
	flag.Parse()
	src, err := render()
	if err == nil {
		err = os.WriteFile(filepath.Join(*repo, output), src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attachkinds:", err)
		os.Exit(1)
	}
}
