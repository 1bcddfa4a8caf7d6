package controller

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// pointRows simulates n attach points of one program, veth0000.. on XDP.
func pointRows(program string, n int, digest string) []v1alpha1.ProgramState {
	rows := make([]v1alpha1.ProgramState, 0, n)
	for i := range n {
		rows = append(rows, v1alpha1.ProgramState{
			BpfProgram: program, UID: types.UID("uid-" + program), Program: "xdp_prog", Digest: digest,
			AttachPoint: fmt.Sprintf("xdp/veth%04d", i), State: v1alpha1.PhaseAttached, ID: 42, LinkID: uint32(100 + i),
		})
	}
	return rows
}

func TestFoldRows(t *testing.T) {
	const max = 256
	manyPrograms := func(programs, points int) []v1alpha1.ProgramState {
		var rows []v1alpha1.ProgramState
		for p := range programs {
			rows = append(rows, pointRows(fmt.Sprintf("p%03d", p), points, "sha256:a")...)
		}
		return rows
	}
	oneFailed := pointRows("glob", 300, "sha256:a")
	oneFailed[137].State, oneFailed[137].Reason, oneFailed[137].Message = v1alpha1.PhaseFailed, "AttachFailed", "device busy"
	oneWaiting := pointRows("glob", 300, "sha256:a")
	oneWaiting[5].State, oneWaiting[5].Reason = v1alpha1.PhasePending, "Loading"
	cases := []struct {
		name                   string
		rows                   []v1alpha1.ProgramState
		wantRows, wantFolded   int
		wantDropped            int
		wantState              v1alpha1.ProgramPhase // of the first row
		wantReason, wantInText string
	}{
		{name: "under the cap: untouched", rows: pointRows("glob", 200, "sha256:a"), wantRows: 200, wantState: v1alpha1.PhaseAttached},
		{name: "at the cap: untouched", rows: pointRows("glob", max, "sha256:a"), wantRows: max, wantState: v1alpha1.PhaseAttached},
		{name: "one glob over the cap folds into one row", rows: append(pointRows("glob", 300, "sha256:a"), pointRows("zsmall", 3, "sha256:a")...),
			wantRows: 4, wantFolded: 299, wantState: v1alpha1.PhaseAttached, wantInText: "300 attach points: xdp/veth0000 .. xdp/veth0299"},
		{name: "a failed point fails the folded row", rows: oneFailed, wantRows: 1, wantFolded: 299,
			wantState: v1alpha1.PhaseFailed, wantReason: "AttachFailed", wantInText: "300 attach points"},
		{name: "a waiting point keeps the folded row waiting", rows: oneWaiting, wantRows: 1, wantFolded: 299,
			wantState: v1alpha1.PhasePending, wantReason: "Loading"},
		{name: "largest programs fold first, just enough", rows: manyPrograms(100, 3), wantRows: 256, wantFolded: 44, wantState: v1alpha1.PhaseAttached},
		{name: "more programs than rows: the tail is left out", rows: manyPrograms(300, 1), wantRows: max, wantDropped: 44, wantState: v1alpha1.PhaseAttached},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, folded, dropped := foldRows(tc.rows, max)
			if len(out) != tc.wantRows || folded != tc.wantFolded || dropped != tc.wantDropped {
				t.Fatalf("%d rows, %d folded, %d dropped; want %d, %d, %d", len(out), folded, dropped, tc.wantRows, tc.wantFolded, tc.wantDropped)
			}
			if out[0].State != tc.wantState || (tc.wantReason != "" && out[0].Reason != tc.wantReason) {
				t.Errorf("first row %s/%s, want %s/%s", out[0].State, out[0].Reason, tc.wantState, tc.wantReason)
			}
			if tc.wantInText != "" && !strings.Contains(out[0].AttachPoint, tc.wantInText) {
				t.Errorf("first row's attach point %q lacks %q", out[0].AttachPoint, tc.wantInText)
			}
			// What the operator reads survives: every (uid, program,
			// digest) that was reported is still there unless dropped.
			if dropped == 0 {
				seen := map[string]bool{}
				for _, r := range out {
					seen[string(r.UID)+r.Program+r.Digest] = true
				}
				for _, r := range tc.rows {
					if !seen[string(r.UID)+r.Program+r.Digest] {
						t.Fatalf("program %s/%s lost by folding", r.BpfProgram, r.Program)
					}
				}
			}
			again, _, _ := foldRows(tc.rows, max)
			for i := range out {
				if again[i].AttachPoint != out[i].AttachPoint {
					t.Fatalf("folding is not stable: %q then %q", out[i].AttachPoint, again[i].AttachPoint)
				}
			}
		})
	}
}
