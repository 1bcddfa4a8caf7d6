package plugin

import (
	"bufio"
	"slices"
	"strings"
	"testing"
)

// TestWholeLines: a stream cut mid-line (an agent killed while writing)
// yields its whole lines only, never the partial last one.
func TestWholeLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"a\nb\n", []string{"a", "b"}},
		{"a\nb\n{\"schema\":\"bpfleet.io/ev", []string{"a", "b"}},
		{"\n\n", []string{"", ""}},
		{"", nil},
	} {
		sc := bufio.NewScanner(strings.NewReader(tt.in))
		sc.Split(wholeLines)
		var got []string
		for sc.Scan() {
			got = append(got, sc.Text())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
	}
}
