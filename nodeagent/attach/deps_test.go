package attach_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoAPITypes: the packages that load, attach and keep programs take
// hooks, loader types and the dataplane's own types, never the CRD types,
// not even through a package they import (hookspec, which turns one into
// the other, is the node agent controller's).
func TestNoAPITypes(t *testing.T) {
	const api = "github.com/bpfleet/bpfleet/api/v1alpha1"
	for _, pkg := range []string{
		"github.com/bpfleet/bpfleet/nodeagent/attach",
		"github.com/bpfleet/bpfleet/nodeagent/internal/loader",
		"github.com/bpfleet/bpfleet/nodeagent/dataplane",
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
