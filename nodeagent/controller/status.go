package controller

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// nodeStatus builds the status the node reports now from the dataplane's
// states. Fields that only move with time (run-time statistics, the
// verification time of a digest already reported) are carried over from prev
// unless withStats asks for fresh statistics, so that an idle node computes
// exactly the status it already has.
func (r *Reconciler) nodeStatus(prev v1alpha1.BpfNodeStateStatus, states []v1alpha1.ProgramState, verified map[types.UID]time.Time, withStats bool) v1alpha1.BpfNodeStateStatus {
	old := map[string]v1alpha1.ProgramState{}
	for _, s := range prev.Programs {
		old[entryKey(s)] = s
	}
	// Past MaxProgramRows attach points, fold them per program first; the
	// folded rows then carry over from prev like any other (their
	// attachPoint is stable while the set of points is).
	rows := slices.Clone(states)
	sort.SliceStable(rows, func(i, j int) bool { return entryKey(rows[i]) < entryKey(rows[j]) })
	rows, folded, dropped := foldRows(rows, v1alpha1.MaxProgramRows)
	programs := make([]v1alpha1.ProgramState, 0, len(rows))
	for _, s := range rows {
		s := *s.DeepCopy()
		o, had := old[entryKey(s)]
		switch at, ok := verified[s.UID]; {
		case had && o.VerifiedAt != nil && o.Digest == s.Digest && s.Digest != "":
			// First verification of this digest on this node; later checks
			// (memo expiry, a restarted agent) do not move it.
			s.VerifiedAt = o.VerifiedAt
		case ok && s.Digest != "":
			t := metav1.NewTime(at.Truncate(time.Second))
			s.VerifiedAt = &t
		}
		if s.Signer == "" && had && o.Digest == s.Digest {
			// A re-adopted program the registry could not verify again.
			s.Signer = o.Signer
		}
		if !withStats {
			if had && o.ID == s.ID {
				s.RunCount, s.RunTimeNs, s.NsPerRun = o.RunCount, o.RunTimeNs, o.NsPerRun
			} else {
				s.RunCount, s.RunTimeNs, s.NsPerRun = 0, 0, 0
			}
		}
		switch {
		case had && o.ID == s.ID && s.ID != 0 && o.LoadedAt != nil && s.LoadedAt != nil:
			// The same kernel program: its load time is derived from the
			// boot time and may wobble by a second between reads.
			s.LoadedAt = o.LoadedAt
		case s.LoadedAt != nil:
			t := metav1.NewTime(s.LoadedAt.Truncate(time.Second))
			s.LoadedAt = &t
		}
		programs = append(programs, s)
	}
	slices.SortStableFunc(programs, func(a, b v1alpha1.ProgramState) int { return strings.Compare(entryKey(a), entryKey(b)) })
	shareVerifiedAt(programs)

	next := v1alpha1.BpfNodeStateStatus{
		Kernel:       r.Dataplane.Kernel(),
		Features:     r.Dataplane.Features(),
		Programs:     programs,
		Summary:      summarize(programs),
		StatsAt:      prev.StatsAt,
		Unmanaged:    prev.Unmanaged,
		AgentVersion: r.Version,
		Conditions:   append([]metav1.Condition(nil), prev.Conditions...),
	}
	if withStats {
		now := metav1.NowMicro()
		next.StatsAt = &now
	}
	slices.SortFunc(next.Features, func(a, b v1alpha1.Feature) int { return strings.Compare(a.Name, b.Name) })
	setReadyCondition(&next)
	setFoldedCondition(&next, len(states), folded, dropped)
	return next
}

// shareVerifiedAt gives the rows of one bundle admitted by one signer the
// earliest verification time among them: when this node first verified
// that bundle under that policy. Rows verified seconds apart (programs
// added one after the other) then share one status.bundles entry instead of
// storing the digest and signer again each, and the time stays put while
// any of them runs, as each row's own did.
func shareVerifiedAt(programs []v1alpha1.ProgramState) {
	first := map[[2]string]*metav1.Time{}
	for i := range programs {
		p := &programs[i]
		k := [2]string{p.Digest, p.Signer}
		if t := first[k]; p.VerifiedAt != nil && (t == nil || p.VerifiedAt.Before(t)) {
			first[k] = p.VerifiedAt
		}
	}
	for i := range programs {
		if p := &programs[i]; p.VerifiedAt != nil {
			t := *first[[2]string{p.Digest, p.Signer}]
			p.VerifiedAt = &t
		}
	}
}

// entryKey identifies one program entry: BpfProgram uid, program, attach point.
func entryKey(s v1alpha1.ProgramState) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s", s.BpfProgram, s.UID, s.Program, s.AttachPoint)
}

func summarize(programs []v1alpha1.ProgramState) v1alpha1.NodeSummary {
	sum := v1alpha1.NodeSummary{Programs: int32(len(programs))}
	for _, s := range programs {
		switch s.State {
		case v1alpha1.PhaseAttached:
			sum.Attached++
		case v1alpha1.PhaseFailed:
			sum.Failed++
		}
	}
	return sum
}

// setReadyCondition: Ready is True when every entry is Attached at its
// desired digest with nothing held; otherwise False with the first failing
// (else first waiting) entry's reason.
func setReadyCondition(st *v1alpha1.BpfNodeStateStatus) {
	cond := metav1.Condition{
		Type:    v1alpha1.ConditionReady,
		Status:  metav1.ConditionTrue,
		Reason:  v1alpha1.ReasonAllAttached,
		Message: fmt.Sprintf("%d program entries attached", st.Summary.Attached),
	}
	var failed, waiting *v1alpha1.ProgramState
	nWaiting := 0
	for i := range st.Programs {
		s := &st.Programs[i]
		switch {
		case s.State == v1alpha1.PhaseFailed:
			if failed == nil {
				failed = s
			}
		case s.State != v1alpha1.PhaseAttached || (s.Reason != "" && s.Reason != v1alpha1.ReasonAttached):
			nWaiting++
			if waiting == nil {
				waiting = s
			}
		}
	}
	switch {
	case failed != nil:
		cond.Status = metav1.ConditionFalse
		cond.Reason = failed.Reason
		cond.Message = fmt.Sprintf("%d of %d program entries failed; first: %s/%s: %s",
			st.Summary.Failed, st.Summary.Programs, failed.BpfProgram, failed.Program, failed.Message)
	case waiting != nil:
		cond.Status = metav1.ConditionFalse
		cond.Reason = waiting.Reason
		cond.Message = fmt.Sprintf("%d of %d program entries not at their desired digest yet; first: %s/%s: %s",
			nWaiting, st.Summary.Programs, waiting.BpfProgram, waiting.Program, waiting.Message)
	}
	if cond.Reason == "" {
		cond.Reason = string(v1alpha1.PhasePending)
	}
	cond.Message = v1alpha1.Truncate(cond.Message, 1024)
	meta.SetStatusCondition(&st.Conditions, cond)
}

// statusEqual compares two statuses semantically: condition transition times
// and the statistics' read time are ignored, and run-time statistics unless
// withStats (unchanged statistics are not written again).
func statusEqual(a, b v1alpha1.BpfNodeStateStatus, withStats bool) bool {
	a, b = *a.DeepCopy(), *b.DeepCopy()
	for _, st := range []*v1alpha1.BpfNodeStateStatus{&a, &b} {
		st.StatsAt = nil
		for i := range st.Conditions {
			st.Conditions[i].LastTransitionTime = metav1.Time{}
			st.Conditions[i].ObservedGeneration = 0
		}
		if !withStats {
			for i := range st.Programs {
				p := &st.Programs[i]
				p.RunCount, p.RunTimeNs, p.NsPerRun = 0, 0, 0
			}
		}
	}
	return equality.Semantic.DeepEqual(a, b)
}
