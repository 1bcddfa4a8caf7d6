package manifests_test

import (
	"testing"

	"github.com/bpfleet/bpfleet/test/support/manifests"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct{ path, container string }{
		{"config/agent/daemonset.yaml", "agent"},
		{"config/operator/deployment.yaml", "operator"},
	} {
		if got := manifests.MemoryLimit(t, tc.path, tc.container); got < 64*1024 {
			t.Errorf("%s %s: limit %d KiB, want a real limit", tc.path, tc.container, got)
		}
	}
}
