package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const manyReport = `## Fleet scale simulation (test/scale)

1000 simulated nodes (real agent reconciler, one manager each), load average at the end 3.1, 2026-12-03.

| scenario | figure | value | goal | met |
|---|---|---|---|---|
| apply | apply one BpfProgram → every node Attached | 4.2 s | < 30 s at 5,000 nodes | n/a (1000 nodes) |
| apply | watch events sent | 2743 |  |  |
| many programs | adding 99 programs until every node runs 100 | 48.1 s | < 60 s at 1,000 nodes × 100 | **yes** |

API requests per node by verb:

| phase | wall | goal | x | y |
|---|---|---|---|---|
| add | 48 s | a | b | c |
`

func TestScenarioGoals(t *testing.T) {
	dir := t.TempDir()
	many := filepath.Join(dir, "many.md")
	if err := os.WriteFile(many, []byte(manyReport), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := scenarioGoals([]scenario{{target: "bench-many", path: many}, {target: "bench-5k", path: filepath.Join(dir, "missing.md")}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want string
		in   bool
	}{
		{"goal row met", "| many programs | adding 99 programs until every node runs 100 | 48.1 s | < 60 s at 1,000 nodes × 100 | **yes** | `make bench-many` |", true},
		{"goal row not applicable at this size", "| apply | apply one BpfProgram → every node Attached | 4.2 s | < 30 s at 5,000 nodes | n/a (1000 nodes) | `make bench-many` |", true},
		{"what was simulated", "`make bench-many`: 1000 simulated nodes (real agent reconciler, one manager each)", true},
		{"a missing report is said", "`make bench-5k` wrote no report", true},
		{"rows without a goal stay in the report", "watch events sent", false},
		{"the phase table stays in the report", "| add | 48 s |", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(got, tt.want) != tt.in {
				t.Errorf("table contains %q = %v, want %v:\n%s", tt.want, !tt.in, tt.in, got)
			}
		})
	}
}

func TestScenarioFlag(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"bench-many=bin/many.md", false},
		{"bin/many.md", true},
		{"=bin/many.md", true},
		{"bench-many=", true},
	}
	for _, tt := range tests {
		var s scenarioFlags
		if err := s.Set(tt.in); (err != nil) != tt.wantErr {
			t.Errorf("Set(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
		}
	}
}
