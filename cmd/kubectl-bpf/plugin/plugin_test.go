package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/cmd/kubectl-bpf/plugin"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

var env *envtest.Env

func TestMain(m *testing.M) { os.Exit(envtest.Run(m, &env)) }

// run executes kubectl-bpf through the kubeconfig flag, as kubectl would.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := plugin.NewCommand(genericiooptions.IOStreams{Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", env.Kubeconfig}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	prog := &v1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-filter"},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: "127.0.0.1:5000/bpfleet/xdp-pod-filter:v1"},
			Programs: []v1.ProgramAttachment{{
				Name: "xdp_pod_filter",
				XDP:  &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth0"}}},
			}},
		},
	}
	if err := env.Client.Create(ctx, prog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, prog) })
	prog.Status.ResolvedDigest = "sha256:" + strings.Repeat("ab", 32)
	prog.Status.Signer = "local/dev"
	prog.Status.Nodes = v1.NodeCounts{Selected: 2, Attached: 1, Failed: 1, Summary: "1/2"}
	prog.Status.Kernels = []v1.KernelCompatibility{{Release: "6.18.0", Attached: 1, Failed: 1}}
	prog.Status.Conditions = []metav1.Condition{{
		Type: v1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1.ReasonNodesFailed,
		Message: "1 node failed", LastTransitionTime: metav1.Now(),
	}}
	if err := env.Client.Status().Update(ctx, prog); err != nil {
		t.Fatal(err)
	}
	loaded := metav1.NewTime(time.Now().Add(-time.Minute))
	for _, n := range []struct {
		name  string
		state v1.ProgramState
	}{
		{"node-a", v1.ProgramState{
			BpfProgram: "pod-filter", UID: prog.UID, Program: "xdp_pod_filter", AttachPoint: "xdp/eth0",
			State: v1.PhaseAttached, ID: 42, Tag: "0123456789abcdef", Type: "xdp", LoadedAt: &loaded,
			BytesXlated: 512, BytesJited: 300, MapIDs: []uint32{7, 8}, LinkID: 9, RunCount: 1000, RunTimeNs: 15000, NsPerRun: 15,
			Digest: prog.Status.ResolvedDigest, Signer: "local/dev",
		}},
		{"node-b", v1.ProgramState{
			BpfProgram: "pod-filter", UID: prog.UID, Program: "xdp_pod_filter", AttachPoint: "xdp/eth0",
			State: v1.PhaseFailed, Reason: v1.ReasonVerifierRejected, Message: "R1 invalid mem access\n'scalar'",
		}},
	} {
		ns := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: n.name}}
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, ns) })
		ns.Status.Kernel = v1.KernelInfo{Release: "6.18.0", BTF: true}
		if n.name == "node-a" {
			ns.Status.Unmanaged = &v1.UnmanagedSummary{
				Count: 3, ByType: map[string]int32{"cgroup_device": 2, "kprobe": 1},
				Programs: []v1.UnmanagedProgram{{ID: 77, Type: "kprobe", Name: "snoop", Tag: "fedcba9876543210", LoadedAt: &loaded, AttachPoint: "kprobe/do_unlinkat", Owners: "snoopd(4242)"}},
			}
		}
		ns.Status.Programs = []v1.ProgramState{n.state}
		ns.Status.Summary = v1.NodeSummary{Programs: 1}
		if n.state.State == v1.PhaseAttached {
			ns.Status.Summary.Attached = 1
		} else {
			ns.Status.Summary.Failed = 1
		}
		if err := env.Client.Status().Update(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCommands(t *testing.T) {
	seed(t)
	tests := []struct {
		name string
		args []string
		// want are fragments that must appear in the output, in order per line.
		want []string
		// notWant must not appear.
		notWant []string
		wantErr string
	}{
		{
			name: "status lists every node",
			args: []string{"status"},
			want: []string{"NODE", "NODE BPFPROGRAM PROGRAM ATTACH POINT STATE SIGNER ID", "node-a  pod-filter  xdp_pod_filter  xdp/eth0  Attached  local/dev  42  0123456789abcdef", "node-b  pod-filter  xdp_pod_filter  xdp/eth0  Failed  -"},
		},
		{
			name:    "status filtered by node",
			args:    []string{"status", "--node", "node-b"},
			want:    []string{"node-b"},
			notWant: []string{"node-a"},
		},
		{
			name: "status wide shows the reason and a one-line message",
			args: []string{"status", "pod-filter", "-o", "wide"},
			want: []string{"VerifierRejected", "R1 invalid mem access 'scalar'", "local/dev"},
		},
		{
			name:    "status of an unknown program fails",
			args:    []string{"status", "no-such-program"},
			wantErr: "get bpfprogram no-such-program",
		},
		{
			name:    "unknown output format fails",
			args:    []string{"status", "-o", "xml"},
			wantErr: "unknown output format",
		},
		{
			name: "nodes",
			args: []string{"nodes"},
			want: []string{"NODE", "node-a  6.18.0  true  1  1  0", "node-b  6.18.0  true  1  0  1"},
		},
		{
			name: "unmanaged counts per node and lists programs",
			args: []string{"unmanaged"},
			want: []string{"NODE UNMANAGED BY TYPE", "node-a 3 cgroup_device:2,kprobe:1", "node-b - -",
				"NODE ID TYPE NAME TAG LOADED ATTACH POINT OWNERS", "node-a 77 kprobe snoop fedcba9876543210", "kprobe/do_unlinkat  snoopd(4242)"},
		},
		{
			name:    "unmanaged of one node",
			args:    []string{"unmanaged", "--node", "node-b"},
			want:    []string{"node-b - -"},
			notWant: []string{"node-a", "snoop"},
		},
		{
			name: "nodes counts unmanaged programs",
			args: []string{"nodes"},
			want: []string{"node-a  6.18.0  true  1  1  0  3", "node-b  6.18.0  true  1  0  1  -"},
		},
		{
			name: "programs wide shows the kernel matrix",
			args: []string{"programs", "-o", "wide"},
			want: []string{"pod-filter  abababababab  local/dev  1/2  1  False", "6.18.0:1/2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			squeezed := squeeze(out)
			for _, w := range tt.want {
				if !strings.Contains(squeezed, squeeze(w)) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	seed(t)
	out, err := run(t, "status", "pod-filter", "--node", "node-a", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Node     string `json:"node"`
		ID       uint32 `json:"id"`
		NsPerRun uint64 `json:"nsPerRun"`
		MapIDs   []uint32
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("parse %s: %v", out, err)
	}
	if len(rows) != 1 || rows[0].Node != "node-a" || rows[0].ID != 42 || rows[0].NsPerRun != 15 || len(rows[0].MapIDs) != 2 {
		t.Fatalf("unexpected rows: %+v", rows)
	}
}

// squeeze folds runs of spaces so column widths do not matter.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }
