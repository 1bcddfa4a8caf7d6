package hookspec_test

import (
	"errors"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// TestSpec: a BpfProgram's spec reaches the dataplane with every program in
// order, each with its hook or the error of its block, pods in the hooks
// that target them, and constants and map entries unchanged.
func TestSpec(t *testing.T) {
	spec := v1alpha1.BpfProgramSpec{
		Programs: []v1alpha1.ProgramAttachment{
			{Name: "inpods", XDP: &v1alpha1.XDPAttach{Pods: &v1alpha1.PodSelector{}}},
			{Name: "noblock"},
			{Name: "tp", Tracepoint: &v1alpha1.TracepointAttach{Group: "sched", Name: "sched_process_exec"}},
		},
		Constants:  []v1alpha1.Constant{{Name: "enabled", Value: "true"}},
		MapEntries: []v1alpha1.MapEntry{{Map: "deny", Key: "AQ==", Value: "AQ==", Encoding: v1alpha1.MapEncodingBase64}},
	}
	web := attach.PodScope{Name: "team-a/web"}
	got := hookspec.Spec(spec, map[string][]attach.PodScope{"inpods": {web}})
	if len(got.Programs) != 3 || got.Programs[0].Name != "inpods" || got.Programs[1].Name != "noblock" || got.Programs[2].Name != "tp" {
		t.Fatalf("programs %+v", got.Programs)
	}
	if p := attach.PodsOf(got.Programs[0].Hook); p == nil || !p.InPods || len(p.Scopes) != 1 || p.Scopes[0].Name != web.Name {
		t.Errorf("pods of the pod-targeted hook: %+v", p)
	}
	if got.Programs[1].Hook != nil || !errors.Is(got.Programs[1].Err, attach.ErrNoAttachBlock) {
		t.Errorf("program without a block: hook %v, error %v", got.Programs[1].Hook, got.Programs[1].Err)
	}
	if got.Programs[2].Hook == nil || got.Programs[2].Err != nil {
		t.Errorf("tracepoint: hook %v, error %v", got.Programs[2].Hook, got.Programs[2].Err)
	}
	if len(got.Constants) != 1 || got.Constants[0] != (loader.Constant{Name: "enabled", Value: "true"}) {
		t.Errorf("constants %+v", got.Constants)
	}
	if len(got.MapEntries) != 1 || got.MapEntries[0] != (loader.MapEntry{Map: "deny", Key: "AQ==", Value: "AQ==", Encoding: loader.Encoding(v1alpha1.MapEncodingBase64)}) {
		t.Errorf("map entries %+v", got.MapEntries)
	}
}

// TestSpecKey: the key changes with what reaches the kernel, not with the
// pods resolved, the image or the node selector.
func TestSpecKey(t *testing.T) {
	base := func() v1alpha1.BpfProgramSpec {
		return v1alpha1.BpfProgramSpec{
			Bundle:   v1alpha1.BundleSource{Image: "r.example/x:v1"},
			Programs: []v1alpha1.ProgramAttachment{{Name: "p", XDP: &v1alpha1.XDPAttach{Pods: &v1alpha1.PodSelector{}}}},
		}
	}
	key := func(change func(*v1alpha1.BpfProgramSpec), pods map[string][]attach.PodScope) string {
		s := base()
		change(&s)
		return hookspec.Spec(s, pods).Key
	}
	same := key(func(*v1alpha1.BpfProgramSpec) {}, nil)
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.BpfProgramSpec)
		pods   map[string][]attach.PodScope
		same   bool
	}{
		{name: "pods resolved", change: func(*v1alpha1.BpfProgramSpec) {}, pods: map[string][]attach.PodScope{"p": {{Name: "a/b"}}}, same: true},
		{name: "image", change: func(s *v1alpha1.BpfProgramSpec) { s.Bundle.Image = "r.example/x:v2" }, same: true},
		{name: "attach block", change: func(s *v1alpha1.BpfProgramSpec) { s.Programs[0].XDP.Mode = v1alpha1.XDPModeGeneric }},
		{name: "constant", change: func(s *v1alpha1.BpfProgramSpec) { s.Constants = []v1alpha1.Constant{{Name: "c", Value: "1"}} }},
		{name: "map entry", change: func(s *v1alpha1.BpfProgramSpec) {
			s.MapEntries = []v1alpha1.MapEntry{{Map: "m", Key: "01", Value: "01"}}
		}},
	} {
		if got := key(tc.change, tc.pods); (got == same) != tc.same {
			t.Errorf("%s: key %q, unchanged %q, want same=%v", tc.name, got, same, tc.same)
		}
	}
}
