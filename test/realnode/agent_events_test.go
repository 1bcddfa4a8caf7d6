package realnode

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
)

// TestAgentEventsAdmittedOnRealNode: the agent pod, with its real bound
// token, still writes its Events about its own BpfNodeState under
// config/rbac/common/agent_events_policy.yaml (the policy refuses every
// other Event from it; test/deploy checks the refusals).
func TestAgentEventsAdmittedOnRealNode(t *testing.T) {
	e := requireSuite(t)
	f, _ := e.newFilter(t, "realnode-agent-events")
	want := f.name + "/"
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list eventsv1.EventList
		out := e.kubectl(t, "get", "events.v1.events.k8s.io", "-n", "default", "-o", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, ev := range list.Items {
			if ev.Regarding.Kind != "BpfNodeState" || ev.Regarding.Name != e.c.NodeName {
				continue
			}
			if ev.Reason == "Attached" && strings.HasPrefix(ev.Note, want) {
				t.Logf("agent Event admitted: %s %s: %s (by %s)", ev.Type, ev.Reason, ev.Note, ev.ReportingController)
				return
			}
			seen = append(seen, ev.Reason+": "+ev.Note)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Attached Event about %s for %s after 30s; the agent's Events there: %q", e.c.NodeName, f.name, seen)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
