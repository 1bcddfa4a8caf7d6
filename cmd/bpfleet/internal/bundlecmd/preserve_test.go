package bundlecmd_test

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/registry"
)

// TestInspectShowsPreservedMaps: the shipped XDP filter preserves its
// rule_hits counters across versions and not its rules, and inspect says
// so per map.
func TestInspectShowsPreservedMaps(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	layout := t.TempDir()
	ref := reg.Ref("ebpf/xdp-pod-filter", "v1")
	mustRun(t, "build", filepath.Join("..", "..", "..", "..", "bpf", "xdpfilter"), "-t", ref, "--layout", layout)
	mustRun(t, "push", ref, "--layout", layout)
	text := mustRun(t, "inspect", ref)
	for _, re := range []string{`(?m)^\s+NAME\s+TYPE\s+KEY\s+VALUE\s+MAX\s+METRIC\s+PRESERVE$`, `(?m)^\s+rule_hits\s+percpuarray\s+\d+\s+\d+\s+\d+\s+yes\s+yes$`, `(?m)^\s+rules\s+array\s+\d+\s+\d+\s+\d+\s*$`} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("inspect output does not match %s:\n%s", re, text)
		}
	}
}
