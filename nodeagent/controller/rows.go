package controller

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// foldRows keeps rows (sorted by entryKey) within max: when there are more,
// the attach points of each program (BpfProgram uid, program, digest) fold
// into one row, largest programs first, until they fit. A folded row is
// Failed when any of its attach points failed (with the first failure's
// reason and message), else Attached when all are, else takes the first
// waiting point's state; its attachPoint names the count and the first and
// last point, which is stable while the set is. What the operator reads
// (uid, program, digest, state) survives folding. If one row per program
// still does not fit, the rows past max are dropped. It returns the rows,
// how many attach-point rows were folded away, and how many were dropped.
func foldRows(rows []v1alpha1.ProgramState, max int) (out []v1alpha1.ProgramState, folded, dropped int) {
	if len(rows) <= max {
		return rows, 0, 0
	}
	type group struct {
		first int // index of the group's first row in rows
		rows  []v1alpha1.ProgramState
	}
	var groups []*group
	byKey := map[string]*group{}
	for i, r := range rows {
		k := fmt.Sprintf("%s\x00%s\x00%s\x00%s", r.BpfProgram, r.UID, r.Program, r.Digest)
		g := byKey[k]
		if g == nil {
			g = &group{first: i}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, r)
	}
	// Fold the largest groups first: each fold saves len-1 rows.
	order := make([]*group, len(groups))
	copy(order, groups)
	sortGroups := func(a, b *group) int {
		if len(a.rows) != len(b.rows) {
			return len(b.rows) - len(a.rows)
		}
		return a.first - b.first
	}
	slices.SortFunc(order, sortGroups)
	total := len(rows)
	foldedSet := map[*group]bool{}
	for _, g := range order {
		if total <= max || len(g.rows) < 2 {
			break
		}
		foldedSet[g] = true
		total -= len(g.rows) - 1
		folded += len(g.rows) - 1
	}
	out = make([]v1alpha1.ProgramState, 0, min(total, max))
	for _, g := range groups {
		if foldedSet[g] {
			out = append(out, foldGroup(g.rows))
		} else {
			out = append(out, g.rows...)
		}
	}
	if len(out) > max {
		dropped = len(out) - max
		out = out[:max]
	}
	return out, folded, dropped
}

// foldGroup makes one row of one program's attach-point rows.
func foldGroup(rows []v1alpha1.ProgramState) v1alpha1.ProgramState {
	f := *rows[0].DeepCopy()
	f.LinkID = 0
	f.AttachPoint = fmt.Sprintf("%d attach points: %s .. %s", len(rows), rows[0].AttachPoint, rows[len(rows)-1].AttachPoint)
	f.AttachPoint = v1alpha1.Truncate(f.AttachPoint, 512)
	var failed, waiting *v1alpha1.ProgramState
	for i := range rows {
		switch r := &rows[i]; {
		case r.State == v1alpha1.PhaseFailed:
			if failed == nil {
				failed = r
			}
		case r.State != v1alpha1.PhaseAttached:
			if waiting == nil {
				waiting = r
			}
		}
	}
	switch {
	case failed != nil:
		f.State, f.Reason, f.Message = failed.State, failed.Reason, failed.AttachPoint+": "+failed.Message
	case waiting != nil:
		f.State, f.Reason, f.Message = waiting.State, waiting.Reason, waiting.AttachPoint+": "+waiting.Message
	}
	f.Message = v1alpha1.Truncate(f.Message, 2048)
	return f
}

// setFoldedCondition reports folding on the status: summary counts and the
// ProgramsFolded condition, which is absent when every attach point has
// its row.
func setFoldedCondition(st *v1alpha1.BpfNodeStateStatus, points, folded, dropped int) {
	st.Summary.FoldedAttachPoints = int32(folded)
	st.Summary.DroppedRows = int32(dropped)
	if folded == 0 && dropped == 0 {
		// The usual case carries no condition, so statuses written before
		// folding existed stay equal.
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionProgramsFolded)
		return
	}
	c := metav1.Condition{
		Type:    v1alpha1.ConditionProgramsFolded,
		Status:  metav1.ConditionTrue,
		Reason:  v1alpha1.ReasonTooManyAttachPoints,
		Message: fmt.Sprintf("%d attach points exceed %d rows: %d folded into one row per program", points, v1alpha1.MaxProgramRows, folded),
	}
	if dropped > 0 {
		c.Message += fmt.Sprintf(", %d program row(s) left out", dropped)
	}
	meta.SetStatusCondition(&st.Conditions, c)
}
