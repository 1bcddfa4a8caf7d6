package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// table parses kubectl's column output into header → value rows.
func table(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("no rows in:\n%s", out)
	}
	header := strings.Fields(lines[0])
	var rows []map[string]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(header) {
			t.Fatalf("row %q has %d columns, header %d", l, len(f), len(header))
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = f[i]
		}
		rows = append(rows, row)
	}
	return rows
}

func TestPrinterColumns(t *testing.T) {
	ctx := context.Background()
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	prog := validProgram()
	prog.GenerateName = ""
	prog.Name = "printer-columns"
	if err := env.Client.Create(ctx, prog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, prog) })
	prog.Status = v1.BpfProgramStatus{
		ResolvedDigest: digest,
		ShortDigest:    digest[7:19],
		AttachTypes:    "xdp",
		Signer:         "local/platform-team",
		Nodes:          v1.NodeCounts{Selected: 3, Attached: 2, Pending: 1, Summary: "2/3"},
	}
	meta.SetStatusCondition(&prog.Status.Conditions, metav1.Condition{
		Type: v1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1.ReasonNodesPending, Message: "1 node pending",
	})
	if err := env.Client.Status().Update(ctx, prog); err != nil {
		t.Fatal(err)
	}

	node := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "printer-node"}}
	if err := env.Client.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, node) })
	node.Status = v1.BpfNodeStateStatus{
		Kernel:  v1.KernelInfo{Release: "6.18.0-test", BTF: true},
		Summary: v1.NodeSummary{Programs: 2, Attached: 1, Failed: 1},
	}
	if err := env.Client.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}

	policy := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "printer-policy"},
		Spec:       v1.BundleTrustPolicySpec{Images: []string{"r.example.com/*"}, AllowUnsigned: true},
	}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, policy) })
	policy.Status = v1.BundleTrustPolicyStatus{KeyCount: 2}
	if err := env.Client.Status().Update(ctx, policy); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		args []string
		// want maps column → value in the object's row.
		want map[string]string
	}{
		{
			args: []string{"get", "bpfprograms", "printer-columns", "-o", "wide"},
			want: map[string]string{
				"NAME": "printer-columns", "TYPES": "xdp", "IMAGE": "registry.example.com/ebpf/filter:v1",
				"DIGEST": "0123456789ab", "NODES": "2/3", "READY": "False",
				"SIGNER": "local/platform-team", "REASON": v1.ReasonNodesPending,
			},
		},
		{
			args: []string{"get", "bpfp", "printer-columns"},
			want: map[string]string{"NODES": "2/3", "DIGEST": "0123456789ab"},
		},
		{
			args: []string{"get", "bpfnodestates", "printer-node"},
			want: map[string]string{"KERNEL": "6.18.0-test", "PROGRAMS": "2", "ATTACHED": "1", "FAILED": "1"},
		},
		{
			args: []string{"get", "bundletrustpolicies", "printer-policy"},
			want: map[string]string{"IMAGES": `["r.example.com/*"]`, "KEYS": "2", "ALLOW-UNSIGNED": "true"},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := env.Kubectl(ctx, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			rows := table(t, out)
			if len(rows) != 1 {
				t.Fatalf("want 1 row, got %d:\n%s", len(rows), out)
			}
			for col, want := range tt.want {
				if got := rows[0][col]; got != want {
					t.Errorf("column %s = %q, want %q\n%s", col, got, want, out)
				}
			}
		})
	}
}

func TestExplainShowsFieldDocs(t *testing.T) {
	out, err := env.Kubectl(context.Background(), "explain", "bpfprogram.spec.programs")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Programs lists the programs of the bundle", "xdp", "tracepoint", "uprobe"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain output lacks %q:\n%s", want, out)
		}
	}
}
