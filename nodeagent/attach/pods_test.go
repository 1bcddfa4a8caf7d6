package attach_test

import (
	"testing"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
)

// TestContainerUprobeTargets: a uprobe in containers has one target per
// selected container, at the path inside its root filesystem, and a
// restarted container (a new id, perhaps a new binary) is a new target.
func TestContainerUprobeTargets(t *testing.T) {
	scope := func(id string) attach.PodScope {
		return attach.PodScope{Name: "team-a/web", Containers: []attach.ContainerScope{
			{Name: "main", ID: id, Root: "/proc/42/root"},
			{Name: "sidecar", ID: "ffffffffffffffffff", Root: "/proc/43/root"},
		}}
	}
	h := &attach.Uprobe{Named: attach.Named{Name: "probe"}, Path: "/app/server", Symbol: "main.handle",
		Pods: attach.Pods{InPods: true, Scopes: []attach.PodScope{scope("0123456789abcdef")}}, Containers: []string{"main"}}
	ts, err := h.Targets(attach.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Point != "uprobe/pod/team-a/web/main@0123456789ab:/app/server:main.handle" || ts[0].Path != "/proc/42/root/app/server" {
		t.Fatalf("targets %+v", ts)
	}
	h.Pods.Scopes = []attach.PodScope{scope("9999999999999999")}
	again, err := h.Targets(attach.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Point == ts[0].Point {
		t.Fatalf("a restarted container kept its attach point: %+v", again)
	}
}
