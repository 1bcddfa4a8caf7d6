package events

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/cilium/ebpf/btf"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLineSchema: a JSON line carries schema bpfleet.io/events/v1 and
// exactly the documented keys, for a pod's record and for the host's. A
// change here changes what readers parse: bump Schema with it.
func TestLineSchema(t *testing.T) {
	d, err := NewDecoder(&btf.Struct{Name: "r", Size: 4, Members: []btf.Member{{Name: "pid", Type: &btf.Int{Name: "__u32", Size: 4}}}})
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{s: &Streamer{Node: "n1"}, program: "p", output: "o", full: d, kept: d}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c", ContainerID: "containerd://abc"}}}}
	for _, tt := range []struct {
		name string
		id   identity
		keys []string
	}{
		{"pod", identity{Container: Container{PodUID: "u", ContainerID: "abc"}, inPod: true, pod: pod, container: "c"},
			[]string{"bpfProgram", "container", "containerID", "host", "labels", "namespace", "node", "output", "pod", "podUID", "record", "schema", "time"}},
		{"host", identity{}, []string{"bpfProgram", "host", "node", "output", "record", "schema", "time"}},
	} {
		line, err := w.format(tt.id, []byte{42, 0, 0, 0})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s: %q: %v", tt.name, line, err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, tt.keys) || m["schema"] != "bpfleet.io/events/v1" || m["host"] != (tt.name == "host") {
			t.Errorf("%s line %s: keys %v, want %v with schema bpfleet.io/events/v1", tt.name, line, keys, tt.keys)
		}
	}
}
