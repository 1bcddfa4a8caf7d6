package hooks_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
)

// TestEveryBlockHasAKind: each attach block field of the API is a kind of
// the table (a kind file registers it), and each kind is a block field: a
// CRD field without its kind file, or the reverse, fails here.
func TestEveryBlockHasAKind(t *testing.T) {
	var fields []attach.Kind
	typ := reflect.TypeFor[v1alpha1.ProgramAttachment]()
	for i := range typ.NumField() {
		if f := typ.Field(i); f.Type.Kind() == reflect.Pointer {
			// Set only this block and ask which kind it is.
			var a v1alpha1.ProgramAttachment
			reflect.ValueOf(&a).Elem().Field(i).Set(reflect.New(f.Type.Elem()))
			ks := hooks.Kinds(a)
			if len(ks) != 1 {
				t.Fatalf("field %s: kinds %v", f.Name, ks)
			}
			fields = append(fields, ks[0])
		}
	}
	slices.Sort(fields)
	if kinds := attach.Kinds(); !slices.Equal(fields, kinds) {
		t.Errorf("block fields %v, table of kinds %v", fields, kinds)
	}
}

// TestNetfilter: a netfilter block takes netfilter programs, and trust
// policies name it netfilter.
func TestNetfilter(t *testing.T) {
	a := v1alpha1.ProgramAttachment{Name: "p", Netfilter: &v1alpha1.NetfilterAttach{Family: "ipv4", Hook: "input"}}
	if got := hooks.AttachType(a); got != "netfilter" {
		t.Errorf("AttachType = %q, want netfilter", got)
	}
	for _, tt := range []struct {
		typ  ebpf.ProgramType
		at   ebpf.AttachType
		want bool
	}{
		{ebpf.Netfilter, ebpf.AttachNetfilter, true},
		{ebpf.Netfilter, ebpf.AttachNone, false},
		{ebpf.XDP, ebpf.AttachNone, false},
	} {
		if got := hooks.Fits(a, tt.typ, tt.at); got != tt.want {
			t.Errorf("Fits(netfilter, %s, %s) = %v, want %v", tt.typ, tt.at, got, tt.want)
		}
	}
}
