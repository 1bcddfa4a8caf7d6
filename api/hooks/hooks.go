// Package hooks reads the API's attach blocks: which block a program
// attachment sets, the hook it parses into (through the block's kind in
// nodeagent/attach, where each kind is one file), which programs fit it,
// and the name trust policies give it (allowedAttachTypes). The bundle
// builder, the operator, the agent and the trust checks share it.
//
// A block takes programs of exactly the types it can attach, not a family:
// a cgroup hook takes the one program type its kernel attach type expects
// (ingress and egress take cgroup_skb, device takes cgroup_device, ...).
package hooks

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
)

// block is one attach block field of ProgramAttachment: a pointer field
// whose JSON name is the kind's name.
type block struct {
	kind  attach.Kind
	index int
}

// blocks are ProgramAttachment's attach block fields, in the API's order,
// read once from the type: a new CRD field is a new block with no list to
// update here.
var blocks = func() []block {
	var out []block
	t := reflect.TypeFor[v1alpha1.ProgramAttachment]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Pointer {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, block{kind: attach.Kind(name), index: i})
	}
	return out
}()

// Kinds returns every attach block set in a, in the API's order.
func Kinds(a v1alpha1.ProgramAttachment) []attach.Kind {
	v := reflect.ValueOf(a)
	var out []attach.Kind
	for _, b := range blocks {
		if !v.Field(b.index).IsNil() {
			out = append(out, b.kind)
		}
	}
	return out
}

// Kind returns the attach block set in a, "" when none is.
func Kind(a v1alpha1.ProgramAttachment) string {
	if ks := Kinds(a); len(ks) > 0 {
		return string(ks[0])
	}
	return ""
}

// Parse returns the hook of a's one attach block; an error wrapping
// attach.ErrNoAttachBlock when it sets no block or more than one.
func Parse(a v1alpha1.ProgramAttachment) (attach.Hook, error) {
	v := reflect.ValueOf(a)
	var set *block
	for i, b := range blocks {
		if v.Field(b.index).IsNil() {
			continue
		}
		if set != nil {
			return nil, fmt.Errorf("program %s: %w", a.Name, attach.ErrNoAttachBlock)
		}
		set = &blocks[i]
	}
	if set == nil {
		return nil, fmt.Errorf("program %s: %w", a.Name, attach.ErrNoAttachBlock)
	}
	raw, err := json.Marshal(v.Field(set.index).Interface())
	if err != nil {
		return nil, fmt.Errorf("program %s: encode %s block: %w", a.Name, set.kind, err)
	}
	return attach.Parse(set.kind, a.Name, raw)
}

// KindFits tells whether a program of type t, whose ELF section gives it the
// expected attach type at, can be attached by a block of kind. It is all an
// attach hint (a kind without a hook) allows checking; Fits checks a
// complete block.
func KindFits(kind string, t ebpf.ProgramType, at ebpf.AttachType) bool {
	return attach.KindFits(attach.Kind(kind), t, at)
}

// Fits tells whether a program of type t with expected attach type at can be
// attached by the block a: KindFits, and for cgroup blocks exactly the
// program type of the hook.
func Fits(a v1alpha1.ProgramAttachment, t ebpf.ProgramType, at ebpf.AttachType) bool {
	h, err := Parse(a)
	return err == nil && attach.Fits(h, t, at)
}

// AttachType names the hook a attaches to, as trust policies list it in
// allowedAttachTypes: the block kind, followed for tc by the direction and
// for cgroup by the hook: "xdp", "tc/ingress", "tracepoint",
// "rawTracepoint", "uprobe", "cgroup/device", "cgroup/connect4", ... ""
// when no block is set.
func AttachType(a v1alpha1.ProgramAttachment) string {
	h, err := Parse(a)
	if err != nil {
		return Kind(a)
	}
	return attach.PolicyName(h)
}
