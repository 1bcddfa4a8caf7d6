package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func TestEventNote(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// wantLen is the note's length.
		wantLen int
	}{
		{name: "short note kept", in: "3 nodes failed", wantLen: 14},
		{name: "exactly the limit kept", in: strings.Repeat("n", v1alpha1.MaxEventNote), wantLen: v1alpha1.MaxEventNote},
		{name: "a halted rollout naming many nodes is cut", in: strings.Repeat("sim-node-0080: exec_trace: VerifierRejected; ", 100), wantLen: v1alpha1.MaxEventNote},
	}
	for _, tt := range tests {
		got := v1alpha1.EventNote(tt.in)
		if len(got) != tt.wantLen || (len(tt.in) > v1alpha1.MaxEventNote && !strings.HasSuffix(got, "...")) {
			t.Errorf("%s: %d bytes (%q...), want %d", tt.name, len(got), got[:min(len(got), 20)], tt.wantLen)
		}
	}
}
