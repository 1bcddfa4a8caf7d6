package xdplb

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.1.%d.%d:8080", i/250, i%250+1)
	}
	return out
}

func shares(table []int, n int) []int {
	count := make([]int, n)
	for _, b := range table {
		count[b]++
	}
	return count
}

func TestMaglevTable(t *testing.T) {
	tests := []struct {
		name     string
		backends int
		size     int
		maxSkew  float64 // largest share over the fair share, minus 1
	}{
		{name: "three backends, small prime", backends: 3, size: 251, maxSkew: 0.05},
		{name: "three backends, datapath size", backends: 3, size: RingSize, maxSkew: 0.01},
		{name: "ten backends", backends: 10, size: 4099, maxSkew: 0.05},
		{name: "hundred backends", backends: 100, size: RingSize, maxSkew: 0.05},
		{name: "one backend", backends: 1, size: 7, maxSkew: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := MaglevTable(names(tt.backends), tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if len(table) != tt.size {
				t.Fatalf("%d slots, want %d", len(table), tt.size)
			}
			fair := float64(tt.size) / float64(tt.backends)
			for i, n := range shares(table, tt.backends) {
				if skew := float64(n)/fair - 1; skew > tt.maxSkew || skew < -tt.maxSkew-0.001 {
					t.Errorf("backend %d owns %d slots, fair share %.1f (skew %.3f)", i, n, fair, skew)
				}
			}
			again, _ := MaglevTable(names(tt.backends), tt.size)
			if !slices.Equal(table, again) {
				t.Error("table is not deterministic")
			}
		})
	}
}

func TestMaglevTableErrors(t *testing.T) {
	tests := []struct {
		name     string
		backends []string
		size     int
	}{
		{name: "no backends", backends: nil, size: 7},
		{name: "size not prime", backends: names(2), size: 100},
		{name: "size below backends", backends: names(5), size: 3},
		{name: "duplicate backend", backends: []string{"a", "a"}, size: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := MaglevTable(tt.backends, tt.size); !errors.Is(err, ErrInvalidTable) {
				t.Errorf("MaglevTable: %v, want ErrInvalidTable", err)
			}
			if _, err := MaglevRebuild(nil, nil, tt.backends, tt.size); !errors.Is(err, ErrInvalidTable) {
				t.Errorf("MaglevRebuild: %v, want ErrInvalidTable", err)
			}
		})
	}
}

// moved returns the fraction of slots whose backend name changed, and
// whether any slot moved away from a backend that is in both sets.
func moved(before []int, beforeNames []string, after []int, afterNames []string) (float64, bool) {
	present := map[string]bool{}
	for _, n := range afterNames {
		present[n] = true
	}
	var n int
	var survivorMoved bool
	for slot := range before {
		from, to := beforeNames[before[slot]], afterNames[after[slot]]
		if from != to {
			n++
			if present[from] {
				survivorMoved = true
			}
		}
	}
	return float64(n) / float64(len(before)), survivorMoved
}

func TestMaglevRebuildMovesOnlyWhatChanged(t *testing.T) {
	tests := []struct {
		name         string
		before       []string
		after        []string
		wantMoved    float64 // expected fraction of slots that change backend
		survivorsMay bool    // slots of surviving backends may move (adding a backend)
	}{
		{name: "remove one of three", before: names(3), after: names(2), wantMoved: 1.0 / 3},
		{name: "remove middle of ten", before: names(10), after: slices.Delete(names(10), 4, 5), wantMoved: 0.1},
		{name: "add a fourth", before: names(3), after: names(4), wantMoved: 0.25, survivorsMay: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := MaglevRebuild(nil, nil, tt.before, RingSize)
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range shares(before, len(tt.before)) {
				if fair := RingSize / len(tt.before); n < fair || n > fair+1 {
					t.Errorf("backend %d owns %d slots, fair %d", i, n, fair)
				}
			}
			after, err := MaglevRebuild(before, tt.before, tt.after, RingSize)
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range shares(after, len(tt.after)) {
				if fair := RingSize / len(tt.after); n < fair || n > fair+1 {
					t.Errorf("after: backend %d owns %d slots, fair %d", i, n, fair)
				}
			}
			frac, survivorMoved := moved(before, tt.before, after, tt.after)
			if survivorMoved && !tt.survivorsMay {
				t.Error("a slot of a surviving backend moved")
			}
			if frac < tt.wantMoved*0.99 || frac > tt.wantMoved*1.01 {
				t.Errorf("moved %.4f of the slots, want %.4f", frac, tt.wantMoved)
			}
			t.Logf("moved %.4f of the slots", frac)
		})
	}
}

// TestPlainMaglevDisruption measures how much the paper's table (rebuilt
// from scratch) moves when one of three backends goes: a little more than
// the removed backend's third, since survivors' slots can shift too.
func TestPlainMaglevDisruption(t *testing.T) {
	before, _ := MaglevTable(names(3), RingSize)
	after, _ := MaglevTable(names(2), RingSize)
	frac, _ := moved(before, names(3), after, names(2))
	if frac < 1.0/3*0.99 || frac > 0.5 {
		t.Fatalf("plain Maglev moved %.4f of the slots", frac)
	}
	t.Logf("plain Maglev rebuild moved %.4f of the slots (removed backend owned 1/3)", frac)
}
