// Package manifests reads, for tests, what the deployment manifests under
// config/ give a workload's containers.
package manifests

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// MemoryLimit returns, in KiB, the memory limit of container in the pod
// template of the Deployment or DaemonSet manifest at path (relative to the
// repository root, e.g. config/agent/daemonset.yaml). It fails the test
// when the manifest, the container or its limit is missing.
func MemoryLimit(tb testing.TB, path, container string) int64 {
	tb.Helper()
	root, err := envtest.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		tb.Fatal(err)
	}
	var w struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &w); err != nil {
		tb.Fatalf("parse %s: %v", path, err)
	}
	for _, c := range w.Spec.Template.Spec.Containers {
		if c.Name == container {
			q, ok := c.Resources.Limits[corev1.ResourceMemory]
			if !ok {
				tb.Fatalf("the %s container of %s has no memory limit", container, path)
			}
			return q.Value() / 1024
		}
	}
	tb.Fatalf("no %s container in %s", container, path)
	return 0
}
