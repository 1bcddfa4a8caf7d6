package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

var env *envtest.Env

func TestMain(m *testing.M) { os.Exit(envtest.Run(m, &env)) }

// TestSamplesAreAccepted creates every object in config/samples through the
// real API server (server-side dry run, so nothing is left behind).
func TestSamplesAreAccepted(t *testing.T) {
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "bpfleet_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range strings.Split(string(data), "\n---\n") {
				obj := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
					t.Fatalf("parse %s: %v", f, err)
				}
				if err := env.Client.Create(context.Background(), obj, client.DryRunAll); err != nil {
					t.Fatalf("sample %s refused: %v", obj.GetName(), err)
				}
			}
		})
	}
}

func validProgram() *v1.BpfProgram {
	return &v1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "valid-"},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: "registry.example.com/ebpf/filter:v1"},
			Programs: []v1.ProgramAttachment{{
				Name: "xdp_pod_filter",
				XDP:  &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}},
			}},
		},
	}
}

// TestValidationRejects asserts that each malformed object is refused by the
// API server with the field path and message a user would see.
func TestValidationRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *v1.BpfProgram)
		// field is the path the API server names in the error.
		field string
		// message is a fragment of the error the user sees.
		message string
	}{
		{
			name: "no attach block",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
			},
			field:   "spec.programs[0]",
			message: "exactly one attach block",
		},
		{
			name: "two attach blocks",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].Tracepoint = &v1.TracepointAttach{Group: "sched", Name: "sched_process_exec"}
			},
			field:   "spec.programs[0]",
			message: "exactly one attach block",
		},
		{
			name: "no programs",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs = nil
			},
			field:   "spec.programs",
			message: "Required value",
		},
		{
			name: "duplicate program names",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs = append(p.Spec.Programs, p.Spec.Programs[0])
			},
			field:   "spec.programs[1]",
			message: "Duplicate value",
		},
		{
			name: "program name not a C identifier",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].Name = "../etc/passwd"
			},
			field:   "spec.programs[0].name",
			message: "should match",
		},
		{
			name: "interface name too long",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP.Interfaces.Names = []string{"a-very-long-interface-name"}
			},
			field:   "spec.programs[0].xdp.interfaces.names[0]",
			message: "may not be more than 15",
		},
		{
			name: "interface name with a slash",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP.Interfaces.Names = []string{"eth0/1"}
			},
			field:   "spec.programs[0].xdp.interfaces.names[0]",
			message: "should match",
		},
		{
			name: "interfaces without names or primary",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP.Interfaces = v1.InterfaceSelector{}
			},
			field:   "spec.programs[0].xdp.interfaces",
			message: "set names, or primary: true",
		},
		{
			name: "unknown xdp mode",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP.Mode = "offload"
			},
			field:   "spec.programs[0].xdp.mode",
			message: "Unsupported value",
		},
		{
			name: "tracepoint group with a slash",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].Tracepoint = &v1.TracepointAttach{Group: "sched/x", Name: "sched_process_exec"}
			},
			field:   "spec.programs[0].tracepoint.group",
			message: "should match",
		},
		{
			name: "tracepoint without name",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].Tracepoint = &v1.TracepointAttach{Group: "sched"}
			},
			field:   "spec.programs[0].tracepoint.name",
			message: "should be at least 1 chars long",
		},
		{
			name: "uprobe path relative",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].Uprobe = &v1.UprobeAttach{Path: "bin/bash", Symbol: "readline"}
			},
			field:   "spec.programs[0].uprobe.path",
			message: "should match",
		},
		{
			name: "uprobe path escaping with ..",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].Uprobe = &v1.UprobeAttach{Path: "/usr/../bin/bash", Symbol: "readline"}
			},
			field:   "spec.programs[0].uprobe.path",
			message: "must not contain ..",
		},
		{
			name: "uprobe without symbol or offset",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].Uprobe = &v1.UprobeAttach{Path: "/bin/bash"}
			},
			field:   "spec.programs[0].uprobe",
			message: "set symbol or offset",
		},
		{
			name: "unknown cgroup attach type",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].Cgroup = &v1.CgroupAttach{Path: "/sys/fs/cgroup", AttachType: "everything"}
			},
			field:   "spec.programs[0].cgroup.attachType",
			message: "Unsupported value",
		},
		{
			name: "image with a malformed digest",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Bundle.Image = "registry.example.com/ebpf/filter@sha256:1234"
			},
			field:   "spec.bundle.image",
			message: "should match",
		},
		{
			name: "image with upper-case repository",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Bundle.Image = "registry.example.com/EBPF/filter:v1"
			},
			field:   "spec.bundle.image",
			message: "should match",
		},
		{
			name: "waves not ending at 100",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: []int32{10, 50}}
			},
			field:   "spec.rollout.waves",
			message: "waves must increase and end at 100",
		},
		{
			name: "waves decreasing",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: []int32{50, 10, 100}}
			},
			field:   "spec.rollout.waves",
			message: "waves must increase and end at 100",
		},
		{
			name: "wave over 100 percent",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: []int32{10, 200}}
			},
			field:   "spec.rollout.waves[1]",
			message: "should be less than or equal to 100",
		},
		{
			name: "strategy Waves without waves",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves}
			},
			field:   "spec.rollout",
			message: "strategy Waves needs waves",
		},
		{
			name: "negative maxFailedNodes",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Rollout = v1.RolloutSpec{MaxFailedNodes: -1}
			},
			field:   "spec.rollout.maxFailedNodes",
			message: "should be greater than or equal to 0",
		},
		{
			name: "map entry value not hex",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.MapEntries = []v1.MapEntry{{Map: "rules", Key: "00000000", Value: "zz"}}
			},
			field:   "spec.mapEntries[0]",
			message: "key and value must be encoded",
		},
		{
			name: "map entry odd number of hex digits",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.MapEntries = []v1.MapEntry{{Map: "rules", Key: "000", Value: "0102"}}
			},
			field:   "spec.mapEntries[0]",
			message: "key and value must be encoded",
		},
		{
			name: "map entry value too large",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.MapEntries = []v1.MapEntry{{Map: "rules", Key: "00", Value: strings.Repeat("ab", 600)}}
			},
			field:   "spec.mapEntries[0].value",
			message: "may not be more than 1024",
		},
		{
			name: "map entry key set twice",
			mutate: func(p *v1.BpfProgram) {
				e := v1.MapEntry{Map: "rules", Key: "00", Value: "01"}
				p.Spec.MapEntries = []v1.MapEntry{e, e}
			},
			field:   "spec",
			message: "mapEntries must not set the same map key twice",
		},
		{
			name: "constant name with a dot",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Constants = []v1.Constant{{Name: ".rodata", Value: "1"}}
			},
			field:   "spec.constants[0].name",
			message: "should match",
		},
		{
			name: "uprobe pid zero",
			mutate: func(p *v1.BpfProgram) {
				p.Spec.Programs[0].XDP = nil
				p.Spec.Programs[0].Uprobe = &v1.UprobeAttach{Path: "/bin/bash", Symbol: "readline", PID: ptr.To[int32](0)}
			},
			field:   "spec.programs[0].uprobe.pid",
			message: "should be greater than or equal to 1",
		},
	}
	if len(tests) < 15 {
		t.Fatalf("want at least 15 cases, have %d", len(tests))
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProgram()
			tt.mutate(p)
			err := env.Client.Create(ctx, p, client.DryRunAll)
			if err == nil {
				t.Fatal("object was accepted")
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.field) || !strings.Contains(msg, tt.message) {
				t.Fatalf("want field %q and message %q in:\n%s", tt.field, tt.message, msg)
			}
		})
	}
}

// TestUnsignedScopedToAHostIsAccepted guards the wildcard-host rule above:
// allowUnsigned stays usable for one registry's repositories, and keyed
// policies may still use any glob.
func TestUnsignedScopedToAHostIsAccepted(t *testing.T) {
	for _, spec := range []v1.BundleTrustPolicySpec{
		{Images: []string{"127.0.0.1:5000/dev/*", "r.example.com/**"}, AllowUnsigned: true,
			AllowedAttachTypes: []string{"xdp", "tc/*", "cgroup/ingress", "cgroup/device", "cgroup/*", "rawTracepoint"}},
		{Images: []string{"**", "*/**"}, Keys: []v1.TrustedKey{{Name: "k", PublicKey: "-----BEGIN PUBLIC KEY-----"}}},
	} {
		p := &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "p-"}, Spec: spec}
		if err := env.Client.Create(context.Background(), p, client.DryRunAll); err != nil {
			t.Errorf("%v refused: %v", spec.Images, err)
		}
	}
}

// TestValidObjectIsAccepted guards the table above: its base object is valid.
func TestValidObjectIsAccepted(t *testing.T) {
	if err := env.Client.Create(context.Background(), validProgram(), client.DryRunAll); err != nil {
		t.Fatalf("valid object refused: %v", err)
	}
}

func TestTrustPolicyValidation(t *testing.T) {
	tests := []struct {
		name    string
		spec    v1.BundleTrustPolicySpec
		field   string
		message string
	}{
		{
			name:    "no keys and unsigned not allowed",
			spec:    v1.BundleTrustPolicySpec{Images: []string{"r.example.com/*"}},
			field:   "spec",
			message: "set keys, or allowUnsigned: true",
		},
		{
			name: "key with both inline PEM and secret",
			spec: v1.BundleTrustPolicySpec{Images: []string{"r.example.com/*"}, Keys: []v1.TrustedKey{{
				Name: "k", PublicKey: "-----BEGIN PUBLIC KEY-----", SecretRef: &v1.SecretKeyRef{Namespace: "a", Name: "b"},
			}}},
			field:   "spec.keys[0]",
			message: "set exactly one of publicKey and secretRef",
		},
		{
			name:    "no images",
			spec:    v1.BundleTrustPolicySpec{AllowUnsigned: true},
			field:   "spec.images",
			message: "Required value",
		},
		{
			name:    "attach type that names no hook",
			spec:    v1.BundleTrustPolicySpec{Images: []string{"r.example.com/*"}, AllowUnsigned: true, AllowedAttachTypes: []string{"cgroup/ingress", "cgroup/everything"}},
			field:   "spec.allowedAttachTypes[1]",
			message: "should match",
		},
		{
			name:    "allowUnsigned for every image",
			spec:    v1.BundleTrustPolicySpec{Images: []string{"r.example.com/dev/*", "**"}, AllowUnsigned: true},
			field:   "spec",
			message: "allowUnsigned needs a literal registry host",
		},
		{
			name:    "allowUnsigned for any registry",
			spec:    v1.BundleTrustPolicySpec{Images: []string{"*/**"}, AllowUnsigned: true},
			field:   "spec",
			message: "allowUnsigned needs a literal registry host",
		},
		{
			name:    "allowUnsigned for a host pattern",
			spec:    v1.BundleTrustPolicySpec{Images: []string{"*.example.com/dev/*"}, AllowUnsigned: true},
			field:   "spec",
			message: "allowUnsigned needs a literal registry host",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "p-"}, Spec: tt.spec}
			err := env.Client.Create(context.Background(), p, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("want field %q and message %q, got %v", tt.field, tt.message, err)
			}
		})
	}
}

// TestNodeSelectorValidation: the API server refuses the malformed operators
// and values that metav1.LabelSelectorAsSelector would fail on, and accepts
// the selectors agents can evaluate. Before the CEL rules a bad selector passed, and each agent
// then dropped the program on every node.
func TestNodeSelectorValidation(t *testing.T) {
	req := func(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	tests := []struct {
		name string
		sel  *metav1.LabelSelector
		// message is a fragment of the refusal; "" means accepted.
		message string
	}{
		{name: "absent", sel: nil},
		{name: "empty", sel: &metav1.LabelSelector{}},
		{name: "matchLabels", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/os": "linux", "tier": ""}}},
		{name: "In", sel: req("node-role.kubernetes.io/worker", metav1.LabelSelectorOpIn, "a", "b")},
		{name: "NotIn", sel: req("zone", metav1.LabelSelectorOpNotIn, "z1")},
		{name: "Exists", sel: req("gpu", metav1.LabelSelectorOpExists)},
		{name: "DoesNotExist", sel: req("gpu", metav1.LabelSelectorOpDoesNotExist)},
		{name: "unknown operator", sel: req("a", "Bogus", "x"), message: "operator must be In, NotIn, Exists or DoesNotExist"},
		{name: "lower-case operator", sel: req("a", "in", "x"), message: "operator must be In, NotIn, Exists or DoesNotExist"},
		{name: "In without values", sel: req("a", metav1.LabelSelectorOpIn), message: "In or NotIn need values"},
		{name: "NotIn without values", sel: req("a", metav1.LabelSelectorOpNotIn), message: "In or NotIn need values"},
		{name: "Exists with values", sel: req("a", metav1.LabelSelectorOpExists, "x"), message: "Exists or DoesNotExist must not have values"},
		{name: "DoesNotExist with values", sel: req("a", metav1.LabelSelectorOpDoesNotExist, "x"), message: "Exists or DoesNotExist must not have values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The table must agree with what agents evaluate.
			if _, err := metav1.LabelSelectorAsSelector(tt.sel); (err == nil) != (tt.message == "") {
				t.Fatalf("table disagrees with LabelSelectorAsSelector: %v", err)
			}
			p := validProgram()
			p.Spec.NodeSelector = tt.sel
			err := env.Client.Create(context.Background(), p, client.DryRunAll)
			switch {
			case tt.message == "" && err != nil:
				t.Fatalf("valid selector refused: %v", err)
			case tt.message == "":
			case err == nil:
				t.Fatal("invalid selector accepted")
			case !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.nodeSelector") || !strings.Contains(err.Error(), tt.message):
				t.Fatalf("want an Invalid error on spec.nodeSelector with %q, got %v", tt.message, err)
			}
		})
	}
}
