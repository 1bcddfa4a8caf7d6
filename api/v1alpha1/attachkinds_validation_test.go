package v1alpha1_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
)

// The CRD rules that name every attach kind are generated from the table
// of kinds (test/tools/attachkinds). These tests hold them to it through
// the real API server.

// policyWith returns an unsigned-development policy allowing names.
func policyWith(names ...string) *v1.BundleTrustPolicy {
	return &v1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "p-"},
		Spec: v1.BundleTrustPolicySpec{Images: []string{"r.example.com/*"}, AllowUnsigned: true, AllowedAttachTypes: names}}
}

// TestEveryKindsPolicyNameIsAccepted: a trust policy may name every hook
// of every registered kind.
func TestEveryKindsPolicyNameIsAccepted(t *testing.T) {
	for _, name := range attach.PolicyNames() {
		if err := env.Client.Create(context.Background(), policyWith(name), client.DryRunAll); err != nil {
			t.Errorf("allowedAttachTypes [%s] refused: %v", name, err)
		}
	}
}

// TestUnknownPolicyNameIsRefused: a name that no kind gives is refused,
// naming the entry.
func TestUnknownPolicyNameIsRefused(t *testing.T) {
	for _, name := range []string{"kporbe", "XDP", "tc/sideways", "cgroup", "xdp/ingress", "tc/**", ""} {
		t.Run(name, func(t *testing.T) {
			err := env.Client.Create(context.Background(), policyWith("xdp", name), client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), "spec.allowedAttachTypes[1]") || !strings.Contains(err.Error(), "should match") {
				t.Fatalf("allowedAttachTypes [xdp %q]: want refusal of spec.allowedAttachTypes[1], got %v", name, err)
			}
		})
	}
}

// validBlocks holds a valid attach block of each kind, as JSON, by field
// name; a new kind adds its own.
var validBlocks = map[string]string{
	"tc":            `{"interfaces": {"names": ["eth0"]}, "direction": "ingress"}`,
	"tracepoint":    `{"group": "syscalls", "name": "sys_enter_getppid"}`,
	"rawTracepoint": `{"name": "sys_enter"}`,
	"fentry":        `{"function": "do_sys_openat2"}`,
	"fexit":         `{"function": "do_sys_openat2"}`,
	"kprobe":        `{"function": "do_sys_openat2"}`,
	"uprobe":        `{"path": "/bin/bash", "symbol": "readline"}`,
	"cgroup":        `{"path": "/sys/fs/cgroup/app", "attachType": "egress"}`,
	"skLookup":      `{}`,
	"netfilter":     `{"family": "ipv4", "hook": "input"}`,
}

// TestEveryBlockCountsAsAnAttachBlock: every attach block alone is
// accepted, and beside xdp is a second block, refused: the one-block rule
// misses no kind.
func TestEveryBlockCountsAsAnAttachBlock(t *testing.T) {
	typ := reflect.TypeFor[v1.ProgramAttachment]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Type.Kind() != reflect.Pointer || name == "xdp" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			example, ok := validBlocks[name]
			if !ok {
				t.Fatalf("no valid %s block in validBlocks: add one", name)
			}
			block := reflect.New(f.Type.Elem())
			if err := json.Unmarshal([]byte(example), block.Interface()); err != nil {
				t.Fatal(err)
			}
			alone, both := validProgram(), validProgram()
			alone.Spec.Programs[0].XDP = nil
			reflect.ValueOf(&alone.Spec.Programs[0]).Elem().Field(i).Set(block)
			if err := env.Client.Create(context.Background(), alone, client.DryRunAll); err != nil {
				t.Fatalf("%s block alone refused: %v", name, err)
			}
			reflect.ValueOf(&both.Spec.Programs[0]).Elem().Field(i).Set(block)
			err := env.Client.Create(context.Background(), both, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), "exactly one attach block") {
				t.Fatalf("xdp and %s: want refusal as two attach blocks, got %v", name, err)
			}
		})
	}
}
