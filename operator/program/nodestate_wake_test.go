package program

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

func TestNodeStateUpdateWakesOnlyTheProgramsWhoseRowsChanged(t *testing.T) {
	row := func(name string, state v1alpha1.ProgramPhase) v1alpha1.ProgramState {
		return v1alpha1.ProgramState{BpfProgram: name, UID: types.UID("uid-" + name), Program: "x", State: state, Digest: "sha256:1"}
	}
	state := func(kernel string, rows ...v1alpha1.ProgramState) *v1alpha1.BpfNodeState {
		return &v1alpha1.BpfNodeState{Status: v1alpha1.BpfNodeStateStatus{
			Kernel: v1alpha1.KernelInfo{Release: kernel}, Programs: rows,
			Summary: v1alpha1.NodeSummary{Programs: int32(len(rows))},
		}}
	}
	base := []v1alpha1.ProgramState{row("a", v1alpha1.PhaseAttached), row("b", v1alpha1.PhaseAttached), row("c", v1alpha1.PhasePending)}
	with := func(i int, edit func(*v1alpha1.ProgramState)) []v1alpha1.ProgramState {
		out := append([]v1alpha1.ProgramState(nil), base...)
		edit(&out[i])
		return out
	}
	stats := state("6.18", with(0, func(e *v1alpha1.ProgramState) { e.RunCount, e.RunTimeNs, e.NsPerRun = 10, 100, 10 })...)
	stats.Status.StatsAt = &metav1.MicroTime{}
	tests := []struct {
		name     string
		old, cur *v1alpha1.BpfNodeState
		want     string
	}{
		{"one program attached", state("6.18", base...), state("6.18", with(2, func(e *v1alpha1.ProgramState) { e.State = v1alpha1.PhaseAttached })...), "[c]"},
		{"a program added", state("6.18", base[:2]...), state("6.18", base...), "[c]"},
		{"a program removed", state("6.18", base...), state("6.18", base[1:]...), "[a]"},
		{"new digest of one", state("6.18", base...), state("6.18", with(1, func(e *v1alpha1.ProgramState) { e.Digest = "sha256:2" })...), "[b]"},
		{"run-time statistics of one", state("6.18", base...), stats, "[a]"},
		{"nothing", state("6.18", base...), state("6.18", base...), "[]"},
		{"new kernel: every program's compatibility", state("6.18", base...), state("6.19", base...), "[a a b b c c]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(names(changedNodeStatePrograms(tt.old, tt.cur))); got != tt.want {
				t.Errorf("woke %s, want %s", got, tt.want)
			}
		})
	}
}
