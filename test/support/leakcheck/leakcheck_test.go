package leakcheck

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestLeakedFDs: a map left open is named as a leak; once closed, nothing is.
func TestLeakedFDs(t *testing.T) {
	privileged.RequireRoot(t)
	before := bpfFDs()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	leaked := leakedFDs(before)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "bpf-map") {
		t.Errorf("leaks with a map open = %q, want the map", leaked)
	}
	m.Close()
	if leaked := leakedFDs(before); len(leaked) != 0 {
		t.Errorf("leaks after closing the map = %q, want none", leaked)
	}
}
