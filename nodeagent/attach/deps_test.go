package attach_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoAPITypes: the packages that attach and load programs take hooks and
// loader types, never the CRD types (hookspec turns one into the other).
func TestNoAPITypes(t *testing.T) {
	const api = "github.com/bpfleet/bpfleet/api/v1alpha1"
	for _, pkg := range []string{
		"github.com/bpfleet/bpfleet/nodeagent/attach",
		"github.com/bpfleet/bpfleet/nodeagent/loader",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == api {
				t.Errorf("%s depends on %s", pkg, api)
			}
		}
	}
}
