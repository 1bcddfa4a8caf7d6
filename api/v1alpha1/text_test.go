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

func TestTruncate(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"shorter kept", "abc", 10, "abc"},
		{"exactly n kept", "abcdefghij", 10, "abcdefghij"},
		{"longer cut to n with the mark", "abcdefghijk", 10, "abcdefg..."},
	}
	for _, tt := range tests {
		if got := v1alpha1.Truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("%s: Truncate(%q, %d) = %q, want %q", tt.name, tt.in, tt.n, got, tt.want)
		}
	}
}

func TestShortDigest(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"sha256 digest", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "0123456789ab"},
		{"bare hex", "0123456789abcdef", "0123456789ab"},
		{"short", "sha256:abc", "abc"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		if got := v1alpha1.ShortDigest(tt.in); got != tt.want {
			t.Errorf("%s: ShortDigest(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}
