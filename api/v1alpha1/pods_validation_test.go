package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

func frontendPods() *v1.PodSelector {
	return &v1.PodSelector{Selector: v1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}
}

func validPodProgram() *v1.BpfPodProgram {
	return &v1.BpfPodProgram{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "valid-", Namespace: "default"},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: "registry.example.com/ebpf/filter:v1"},
			Programs: []v1.ProgramAttachment{{
				Name: "xdp_pod_filter",
				XDP:  &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}, Pods: frontendPods()},
			}},
		},
	}
}

// TestPodProgramTenancy asserts that the API server confines a
// BpfPodProgram to its own namespace's pods: every node target and every
// way out of the namespace is refused with the message a user sees, and
// every pod target is accepted.
func TestPodProgramTenancy(t *testing.T) {
	const confined = "may only attach to pods of its own namespace"
	tests := []struct {
		name   string
		mutate func(p *v1.BpfPodProgram)
		// message is a fragment of the refusal; empty means accepted.
		message string
	}{
		{name: "xdp in pods", mutate: func(p *v1.BpfPodProgram) {}},
		{name: "tc in pods", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "tc_pod", TC: &v1.TCAttach{Interfaces: v1.InterfaceSelector{Primary: true}, Direction: v1.TCIngress, Pods: frontendPods()}}
		}},
		{name: "cgroup of pods", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "count", Cgroup: &v1.CgroupAttach{Pods: frontendPods(), AttachType: "ingress"}}
		}},
		{name: "uprobe in containers", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "probe", Uprobe: &v1.UprobeAttach{Path: "/bin/app", Symbol: "main", Containers: &v1.ContainerSelector{Pods: *frontendPods(), Names: []string{"app"}}}}
		}},
		{name: "tracepoint filtered by pods", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "exec", Tracepoint: &v1.TracepointAttach{Group: "sched", Name: "sched_process_exec", Pods: frontendPods()}}
		}},
		{name: "host interface", message: confined, mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0].XDP.Pods = nil
		}},
		{name: "other namespaces", message: confined, mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0].XDP.Pods.NamespaceSelector = &v1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}
		}},
		{name: "node cgroup", message: "set exactly one of path and pods", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "count", Cgroup: &v1.CgroupAttach{Path: "/sys/fs/cgroup", Pods: frontendPods(), AttachType: "ingress"}}
		}},
		{name: "node cgroup path only", message: confined, mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "count", Cgroup: &v1.CgroupAttach{Path: "/sys/fs/cgroup", AttachType: "ingress"}}
		}},
		{name: "host path", message: confined, mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "probe", Uprobe: &v1.UprobeAttach{Path: "/usr/bin/bash", Symbol: "readline"}}
		}},
		{name: "node-wide tracepoint", message: confined, mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "exec", Tracepoint: &v1.TracepointAttach{Group: "sched", Name: "sched_process_exec"}}
		}},
		{name: "kernel function", message: confined, mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "fn", Fentry: &v1.FunctionAttach{Function: "tcp_connect"}}
		}},
		{name: "uprobe pid and containers", message: "pid and containers are exclusive", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0] = v1.ProgramAttachment{Name: "probe", Uprobe: &v1.UprobeAttach{Path: "/bin/app", Symbol: "main", PID: ptr.To[int32](1), Containers: &v1.ContainerSelector{Pods: *frontendPods()}}}
		}},
		{name: "tenant set by the user", message: "spec.tenant is set by the operator", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Tenant = &v1.Tenant{Namespace: "kube-system", Name: "x"}
		}},
		{name: "malformed pod selector", message: "supported values: \"In\", \"NotIn\"", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0].XDP.Pods.Selector.MatchExpressions = []v1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}
		}},
		{name: "In without values", message: "In and NotIn need values", mutate: func(p *v1.BpfPodProgram) {
			p.Spec.Programs[0].XDP.Pods.Selector.MatchExpressions = []v1.LabelSelectorRequirement{{Key: "app", Operator: "In"}}
		}},
		{name: "name too long", message: "at most 63 characters", mutate: func(p *v1.BpfPodProgram) {
			p.GenerateName = ""
			p.Name = strings.Repeat("a", 64)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPodProgram()
			tt.mutate(p)
			err := env.Client.Create(context.Background(), p, client.DryRunAll)
			if tt.message == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if v := v1.TenantViolations(&p.Spec); len(v) > 0 {
					t.Fatalf("admitted by the API server but TenantViolations says %v", v)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted, want refused")
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q does not say %q", err, tt.message)
			}
		})
	}
}

// TestTenantViolationsMatchesAdmission asserts the Go check that the
// operator and agents run agrees with the CRD on the targets that matter.
func TestTenantViolationsMatchesAdmission(t *testing.T) {
	tests := []struct {
		name string
		a    v1.ProgramAttachment
		want int
	}{
		{"pod xdp", v1.ProgramAttachment{Name: "a", XDP: &v1.XDPAttach{Pods: frontendPods()}}, 0},
		{"host xdp", v1.ProgramAttachment{Name: "a", XDP: &v1.XDPAttach{}}, 1},
		{"host cgroup", v1.ProgramAttachment{Name: "a", Cgroup: &v1.CgroupAttach{Path: "/"}}, 1},
		{"host uprobe", v1.ProgramAttachment{Name: "a", Uprobe: &v1.UprobeAttach{Path: "/bin/sh"}}, 1},
		{"node tracepoint", v1.ProgramAttachment{Name: "a", Tracepoint: &v1.TracepointAttach{}}, 1},
		{"kprobe", v1.ProgramAttachment{Name: "a", Kprobe: &v1.KprobeAttach{}}, 1},
		{"namespaceSelector", v1.ProgramAttachment{Name: "a", TC: &v1.TCAttach{Pods: &v1.PodSelector{NamespaceSelector: &v1.LabelSelector{}}}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v1.TenantViolations(&v1.BpfProgramSpec{Programs: []v1.ProgramAttachment{tt.a}})
			if len(got) != tt.want {
				t.Fatalf("TenantViolations = %q, want %d", got, tt.want)
			}
		})
	}
}

// TestClusterProgramPodTargets asserts a cluster-scoped BpfProgram may
// select pods across namespaces, and that a cgroup block needs exactly one
// of path and pods.
func TestClusterProgramPodTargets(t *testing.T) {
	p := validProgram()
	p.Spec.Programs = []v1.ProgramAttachment{
		{Name: "xdp_pod_filter", XDP: &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}, Pods: &v1.PodSelector{NamespaceSelector: &v1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}}},
		{Name: "count", Cgroup: &v1.CgroupAttach{Pods: frontendPods(), AttachType: "ingress"}},
	}
	if err := env.Client.Create(context.Background(), p, client.DryRunAll); err != nil {
		t.Fatalf("refused: %v", err)
	}
	p.Spec.Programs[1].Cgroup.Pods = nil
	err := env.Client.Create(context.Background(), p, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "set exactly one of path and pods") {
		t.Fatalf("cgroup without path or pods: err = %v", err)
	}
}
