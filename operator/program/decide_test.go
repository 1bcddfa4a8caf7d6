package program

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/rollout"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
)

const (
	dOld = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	dNew = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	uid  = types.UID("prog-uid")
)

var t0 = time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)

func testProgram(strategy v1alpha1.RolloutStrategy, r *v1alpha1.RolloutStatus) *v1alpha1.BpfProgram {
	return &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "p", UID: uid},
		Spec: v1alpha1.BpfProgramSpec{
			Programs: []v1alpha1.ProgramAttachment{
				{Name: "xdp_filter", XDP: &v1alpha1.XDPAttach{}},
				{Name: "on_exec", Tracepoint: &v1alpha1.TracepointAttach{Group: "sched", Name: "sched_process_exec"}},
			},
			Rollout: v1alpha1.RolloutSpec{Strategy: strategy, Waves: []int32{10, 50, 100}, PauseSeconds: 60, MaxFailedNodes: 1},
		},
		Status: v1alpha1.BpfProgramStatus{Rollout: r},
	}
}

// report builds a node state reporting every program of the test program at
// digest in state phase (Failed entries carry VerifierRejected).
func report(node, release, digest string, phase v1alpha1.ProgramPhase) *v1alpha1.BpfNodeState {
	s := &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node}}
	s.Status.Kernel.Release = release
	for _, prog := range []string{"xdp_filter", "on_exec"} {
		e := v1alpha1.ProgramState{BpfProgram: "p", UID: uid, Digest: digest, Program: prog, State: phase}
		if phase == v1alpha1.PhaseFailed {
			e.Reason, e.Message = v1alpha1.ReasonVerifierRejected, "R1 invalid mem access"
		}
		s.Status.Programs = append(s.Status.Programs, e)
	}
	return s
}

// fleet is 20 nodes, node-00..node-19, with their wave for waves [10,50,100].
type fleet struct {
	names []string
	wave  map[string]int32
}

func newFleet() fleet {
	f := fleet{wave: map[string]int32{}}
	for i := range 20 {
		n := fmt.Sprintf("node-%02d", i)
		f.names = append(f.names, n)
		f.wave[n] = rollout.WaveOf(rollout.Bucket(n, uid), []int32{10, 50, 100})
	}
	return f
}

// views reports, for each node, digest attached when in(wave) says so, with
// override per node name.
func (f fleet) views(state func(name string, wave int32) *v1alpha1.BpfNodeState) []NodeView {
	var out []NodeView
	for _, n := range f.names {
		out = append(out, NodeView{Name: n, State: state(n, f.wave[n])})
	}
	return out
}

func (f fleet) inWave(w int32) []string {
	var out []string
	for _, n := range f.names {
		if f.wave[n] == w {
			out = append(out, n)
		}
	}
	return out
}

func TestFleetCoversEveryWave(t *testing.T) {
	f := newFleet()
	for w := range int32(3) {
		if len(f.inWave(w)) == 0 {
			t.Fatalf("no node of 20 in wave %d; the rollout tests need one", w)
		}
	}
}

func TestDecideRollout(t *testing.T) {
	f := newFleet()
	firstWave := f.inWave(0)
	attachedUpTo := func(digest string, upTo int32, old string) func(string, int32) *v1alpha1.BpfNodeState {
		return func(n string, w int32) *v1alpha1.BpfNodeState {
			if w <= upTo {
				return report(n, "6.18", digest, v1alpha1.PhaseAttached)
			}
			if old != "" {
				return report(n, "6.18", old, v1alpha1.PhaseAttached)
			}
			return nil
		}
	}
	startedAt := metav1.NewTime(t0.Add(-time.Minute))
	pauseEnds := metav1.NewTime(t0.Add(30 * time.Second))
	pauseEnded := metav1.NewTime(t0.Add(-time.Second))

	tests := []struct {
		name     string
		strategy v1alpha1.RolloutStrategy
		// current is status.rollout before the decision.
		current *v1alpha1.RolloutStatus
		// verified is the digest admitted for the current generation.
		verified string
		// paused is whether the RolledOut condition says RolloutPaused.
		paused bool
		// nodes reports each node's state by name and wave.
		nodes func(string, int32) *v1alpha1.BpfNodeState
		// want* are the expected decision.
		wantTarget, wantStable string
		wantWave               int32
		wantHalted             bool
		wantReason             string
		wantRequeue            time.Duration
		wantEvents             []string
		// wantPaused is status.rollout.pausedKernels' releases, comma separated.
		wantPaused string
		// haltedByKernels: the halt is explained by paused releases, not by
		// the nodes of wave 1 (skips the check that it names them).
		haltedByKernels bool
	}{
		{
			name:       "nothing verified: no rollout",
			nodes:      attachedUpTo("", -1, ""),
			wantReason: v1alpha1.ReasonWaitingForBundle,
		},
		{
			name:       "first verified digest starts wave 0 from nothing",
			strategy:   v1alpha1.RolloutWaves,
			verified:   dNew,
			nodes:      attachedUpTo("", -1, ""),
			wantTarget: dNew, wantWave: 0,
			wantReason: v1alpha1.ReasonRolloutInProgress,
			wantEvents: []string{"RolloutStarted"},
		},
		{
			name:       "new digest rolls from the stable one",
			strategy:   v1alpha1.RolloutWaves,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dOld, StableDigest: dOld, Wave: 2},
			verified:   dNew,
			nodes:      attachedUpTo(dOld, 2, ""),
			wantTarget: dNew, wantStable: dOld, wantWave: 0,
			wantReason: v1alpha1.ReasonRolloutInProgress,
			wantEvents: []string{"RolloutStarted"},
		},
		{
			name:       "wave 0 complete: pause starts, requeue after pauseSeconds",
			strategy:   v1alpha1.RolloutWaves,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, WaveStartedAt: &startedAt},
			verified:   dNew,
			nodes:      attachedUpTo(dNew, 0, dOld),
			wantTarget: dNew, wantStable: dOld, wantWave: 0,
			wantReason:  v1alpha1.ReasonRolloutPaused,
			wantRequeue: time.Minute,
			wantEvents:  []string{"WaveCompleted"},
		},
		{
			name:       "paused, 30s left: wait, no event again",
			strategy:   v1alpha1.RolloutWaves,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, WaveStartedAt: &pauseEnds},
			verified:   dNew,
			paused:     true,
			nodes:      attachedUpTo(dNew, 0, dOld),
			wantTarget: dNew, wantStable: dOld, wantWave: 0,
			wantReason:  v1alpha1.ReasonRolloutPaused,
			wantRequeue: 30 * time.Second,
		},
		{
			name:       "pause over: wave 1 begins",
			strategy:   v1alpha1.RolloutWaves,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, WaveStartedAt: &pauseEnded},
			verified:   dNew,
			paused:     true,
			nodes:      attachedUpTo(dNew, 0, dOld),
			wantTarget: dNew, wantStable: dOld, wantWave: 1,
			wantReason: v1alpha1.ReasonRolloutInProgress,
		},
		{
			name:       "last wave complete: target becomes stable",
			strategy:   v1alpha1.RolloutWaves,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 2, WaveStartedAt: &startedAt},
			verified:   dNew,
			nodes:      attachedUpTo(dNew, 2, ""),
			wantTarget: dNew, wantStable: dNew, wantWave: 2,
			wantReason: v1alpha1.ReasonRolloutComplete,
			wantEvents: []string{"WaveCompleted", "RolloutComplete"},
		},
		{
			name:     "two failures in wave 1 exceed maxFailedNodes 1 on a release that runs the target: halt and roll back",
			strategy: v1alpha1.RolloutWaves,
			current:  &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, WaveStartedAt: &startedAt},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				switch w {
				case 0:
					return report(n, "6.18", dNew, v1alpha1.PhaseAttached)
				case 1:
					return report(n, "6.18", dNew, v1alpha1.PhaseFailed)
				}
				return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 1, wantHalted: true,
			wantReason: v1alpha1.ReasonRolledBack,
			wantEvents: []string{"RolloutHalted", "RolledBack"},
		},
		{
			name:     "one failure within maxFailedNodes counts as done",
			strategy: v1alpha1.RolloutWaves,
			current:  &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 0, WaveStartedAt: &startedAt},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				if n == firstWave[0] {
					// Another node of 6.18 runs the target: not a kernel matter.
					return report(n, "6.18", dNew, v1alpha1.PhaseFailed)
				}
				return attachedUpTo(dNew, 0, dOld)(n, w)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 0,
			wantReason:  v1alpha1.ReasonRolloutPaused,
			wantRequeue: time.Minute,
			wantEvents:  []string{"WaveCompleted"},
		},
		{
			name:     "failures on a release no node runs the target on pause that release only; the wave completes",
			strategy: v1alpha1.RolloutWaves,
			current:  &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, WaveStartedAt: &startedAt},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				switch {
				case w == 1 && slices.Index(f.inWave(1), n) < 3:
					// Three failures (maxFailedNodes 1), all on 5.15.
					return report(n, "5.15", dNew, v1alpha1.PhaseFailed)
				case w <= 1:
					return report(n, "6.18", dNew, v1alpha1.PhaseAttached)
				}
				return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 1,
			wantReason:  v1alpha1.ReasonRolloutPaused,
			wantRequeue: time.Minute,
			wantEvents:  []string{"KernelPaused", "WaveCompleted"},
			wantPaused:  "5.15",
		},
		{
			name:     "failures on the fleet's only release are no kernel matter: maxFailedNodes halts",
			strategy: v1alpha1.RolloutWaves,
			current:  &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, WaveStartedAt: &startedAt},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				if w <= 1 {
					return report(n, "6.18", dNew, v1alpha1.PhaseFailed)
				}
				return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 1, wantHalted: true, haltedByKernels: true,
			wantReason: v1alpha1.ReasonRolledBack,
			wantEvents: []string{"RolloutHalted", "RolledBack"},
		},
		{
			name:     "the last release not paused is not paused: its failures count",
			strategy: v1alpha1.RolloutWaves,
			current: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, WaveStartedAt: &startedAt,
				PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "node-02", Reason: "xdp_filter: VerifierRejected"}}},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				switch {
				case w == 1 && slices.Index(f.inWave(1), n) < 3:
					return report(n, "5.15", dOld, v1alpha1.PhaseAttached)
				case w <= 1:
					return report(n, "6.18", dNew, v1alpha1.PhaseFailed)
				}
				return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 1, wantHalted: true, haltedByKernels: true,
			wantReason: v1alpha1.ReasonRolledBack,
			wantEvents: []string{"RolloutHalted", "RolledBack"},
			wantPaused: "5.15",
		},
		{
			name:     "nodes of a paused release are out of the waves once rolled back",
			strategy: v1alpha1.RolloutWaves,
			current: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, WaveStartedAt: &startedAt,
				PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "node-02", Reason: "xdp_filter: VerifierRejected"}}},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				switch {
				case w == 1 && slices.Index(f.inWave(1), n) < 3:
					return report(n, "5.15", dOld, v1alpha1.PhaseAttached)
				case w <= 1:
					return report(n, "6.18", dNew, v1alpha1.PhaseAttached)
				}
				return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 1,
			wantReason:  v1alpha1.ReasonRolloutPaused,
			wantRequeue: time.Minute,
			wantEvents:  []string{"WaveCompleted"},
			wantPaused:  "5.15",
		},
		{
			name:     "a second paused release counts toward maxFailedNodes 1, a third halts",
			strategy: v1alpha1.RolloutWaves,
			current: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, WaveStartedAt: &startedAt,
				PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "node-02", Reason: "xdp_filter: VerifierRejected"}}},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				switch i := slices.Index(f.inWave(1), n); {
				case w == 1 && i == 1:
					return report(n, "5.4", dNew, v1alpha1.PhaseFailed)
				case w == 1 && i == 2:
					return report(n, "4.19", dNew, v1alpha1.PhaseFailed)
				case w <= 1:
					return report(n, "6.18", dNew, v1alpha1.PhaseAttached)
				}
				return report(n, "6.18", dOld, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 1, wantHalted: true, haltedByKernels: true,
			wantReason: v1alpha1.ReasonRolledBack,
			wantEvents: []string{"KernelPaused", "KernelPaused", "RolloutHalted", "RolledBack"},
			wantPaused: "5.15,5.4,4.19",
		},
		{
			name:     "last wave done with a paused release: not complete, stable kept for that release",
			strategy: v1alpha1.RolloutWaves,
			current: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 2, WaveStartedAt: &startedAt,
				PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "node-02", Reason: "xdp_filter: VerifierRejected"}}},
			verified: dNew,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				if w == 1 && slices.Index(f.inWave(1), n) < 3 {
					return report(n, "5.15", dOld, v1alpha1.PhaseAttached)
				}
				return report(n, "6.18", dNew, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 2,
			wantReason: v1alpha1.ReasonKernelsPaused,
			wantEvents: []string{"WaveCompleted", v1alpha1.ReasonKernelsPaused},
			wantPaused: "5.15",
		},
		{
			name:     "kernels paused already reported: no event again",
			strategy: v1alpha1.RolloutWaves,
			current: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 2, WaveStartedAt: &startedAt,
				PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "node-02", Reason: "xdp_filter: VerifierRejected"}}},
			verified: dNew,
			paused:   true,
			nodes: func(n string, w int32) *v1alpha1.BpfNodeState {
				if w == 1 && slices.Index(f.inWave(1), n) < 3 {
					return report(n, "5.15", dOld, v1alpha1.PhaseAttached)
				}
				return report(n, "6.18", dNew, v1alpha1.PhaseAttached)
			},
			wantTarget: dNew, wantStable: dOld, wantWave: 2,
			wantReason: v1alpha1.ReasonKernelsPaused,
			wantPaused: "5.15",
		},
		{
			name:     "a new digest (a fix) starts again with no paused release, from the stable digest",
			strategy: v1alpha1.RolloutWaves,
			current: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 2,
				PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "node-02", Reason: "xdp_filter: VerifierRejected"}}},
			verified:   "sha256:3333333333333333333333333333333333333333333333333333333333333333",
			nodes:      attachedUpTo(dNew, 2, ""),
			wantTarget: "sha256:3333333333333333333333333333333333333333333333333333333333333333", wantStable: dOld, wantWave: 0,
			wantReason: v1alpha1.ReasonRolloutInProgress,
			wantEvents: []string{"RolloutStarted"},
		},
		{
			name:       "halted rollout stays halted for the same digest",
			strategy:   v1alpha1.RolloutWaves,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 1, HaltedReason: "2 node(s) failed"},
			verified:   dNew,
			nodes:      attachedUpTo(dOld, 2, ""),
			wantTarget: dNew, wantStable: dOld, wantWave: 1, wantHalted: true,
			wantReason: v1alpha1.ReasonRolledBack,
		},
		{
			name:       "refused new digest (verified empty) keeps the rollout as is",
			strategy:   v1alpha1.RolloutWaves,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dOld, StableDigest: dOld, Wave: 2},
			verified:   "",
			nodes:      attachedUpTo(dOld, 2, ""),
			wantTarget: dOld, wantStable: dOld, wantWave: 2,
			wantReason: v1alpha1.ReasonRolloutComplete,
		},
		{
			name:       "AllAtOnce: one wave, completes when every node attached",
			strategy:   v1alpha1.RolloutAllAtOnce,
			current:    &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, WaveStartedAt: &startedAt},
			verified:   dNew,
			nodes:      attachedUpTo(dNew, 2, ""),
			wantTarget: dNew, wantStable: dNew, wantWave: 0,
			wantReason: v1alpha1.ReasonRolloutComplete,
			wantEvents: []string{"WaveCompleted", "RolloutComplete"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProgram(tt.strategy, tt.current)
			before := p.DeepCopy()
			d := DecideRollout(RolloutInput{Now: t0, Program: p, Verified: tt.verified, Paused: tt.paused, Nodes: f.views(tt.nodes)})
			if tt.current != nil && !equalRollout(before.Status.Rollout, p.Status.Rollout) {
				t.Fatal("DecideRollout modified its input")
			}
			if d.RolledOut.Reason != tt.wantReason {
				t.Errorf("RolledOut reason %s (%s), want %s", d.RolledOut.Reason, d.RolledOut.Message, tt.wantReason)
			}
			if d.RequeueAfter != tt.wantRequeue {
				t.Errorf("requeue after %s, want %s", d.RequeueAfter, tt.wantRequeue)
			}
			var events []string
			for _, e := range d.Events {
				events = append(events, e.Reason)
			}
			if strings.Join(events, ",") != strings.Join(tt.wantEvents, ",") {
				t.Errorf("events %v, want %v", events, tt.wantEvents)
			}
			r := d.Rollout
			if tt.wantTarget == "" {
				if r != nil {
					t.Fatalf("rollout %+v, want none", r)
				}
				return
			}
			if r.TargetDigest != tt.wantTarget || r.StableDigest != tt.wantStable || r.Wave != tt.wantWave || (r.HaltedReason != "") != tt.wantHalted {
				t.Errorf("rollout target %s stable %s wave %d halted %q; want %s %s %d halted=%v",
					v1alpha1.ShortDigest(r.TargetDigest), v1alpha1.ShortDigest(r.StableDigest), r.Wave, r.HaltedReason, v1alpha1.ShortDigest(tt.wantTarget), v1alpha1.ShortDigest(tt.wantStable), tt.wantWave, tt.wantHalted)
			}
			var paused []string
			for _, k := range r.PausedKernels {
				paused = append(paused, k.Release)
			}
			if got := strings.Join(paused, ","); got != tt.wantPaused {
				t.Errorf("paused kernels %q, want %q", got, tt.wantPaused)
			}
			if tt.wantHalted && tt.current.HaltedReason == "" && !tt.haltedByKernels {
				// The reason names the first five failed nodes with their reasons.
				for _, n := range firstN(f.inWave(1), 5) {
					if !strings.Contains(r.HaltedReason, n+" (xdp_filter: VerifierRejected") {
						t.Errorf("halted reason %q does not name failed node %s", r.HaltedReason, n)
					}
				}
				if len(r.FailedNodes) != len(f.inWave(1)) {
					t.Errorf("failedNodes %v, want the %d nodes of wave 1", r.FailedNodes, len(f.inWave(1)))
				}
			}
		})
	}
}

func equalRollout(a, b *v1alpha1.RolloutStatus) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

func TestSummarize(t *testing.T) {
	p := testProgram(v1alpha1.RolloutAllAtOnce, &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dNew})
	partial := report("n4", "6.18", dNew, v1alpha1.PhaseAttached)
	partial.Status.Programs[1].State = v1alpha1.PhaseLoading
	other := report("n6", "6.18", dNew, v1alpha1.PhaseAttached)
	for i := range other.Status.Programs {
		other.Status.Programs[i].UID = "another-program"
	}
	nodes := []NodeView{
		{Name: "n1", State: report("n1", "6.18", dNew, v1alpha1.PhaseAttached)},
		{Name: "n2", State: report("n2", "5.15", dNew, v1alpha1.PhaseFailed)},
		{Name: "n3", State: report("n3", "6.18", dOld, v1alpha1.PhaseAttached)}, // older digest: pending
		{Name: "n4", State: partial}, // one program still loading: pending
		{Name: "n5"},                 // no BpfNodeState: pending
		{Name: "n6", State: other},   // reports another program only: pending
		{Name: "n7", State: report("n7", "5.15", dNew, v1alpha1.PhaseAttached)},
		// not Ready: what it last said may no longer hold
		{Name: "n8", State: report("n8", "6.18", dNew, v1alpha1.PhaseAttached), NotReady: true},
	}
	s := Summarize(SummaryInput{Program: p, Nodes: nodes})
	want := v1alpha1.NodeCounts{Selected: 8, Attached: 2, Failed: 1, Pending: 5, Summary: "2/8"}
	if s.Counts != want {
		t.Errorf("counts %+v, want %+v", s.Counts, want)
	}
	wantKernels := []v1alpha1.KernelCompatibility{
		{Release: "5.15", Attached: 1, Failed: 1, FirstFailure: "xdp_filter: VerifierRejected: R1 invalid mem access"},
		{Release: "6.18", Attached: 1},
	}
	if fmt.Sprint(s.Kernels) != fmt.Sprint(wantKernels) {
		t.Errorf("kernels %+v, want %+v", s.Kernels, wantKernels)
	}
	if len(s.Failures) != 1 || !strings.HasPrefix(s.Failures[0], "n2: xdp_filter: VerifierRejected") {
		t.Errorf("failures %q", s.Failures)
	}
}

func TestNodeNotReady(t *testing.T) {
	tests := []struct {
		name       string
		conditions []corev1.NodeCondition
		want       bool
	}{
		{name: "no condition yet"},
		{name: "ready", conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
		{name: "not ready", conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}, want: true},
		{name: "kubelet stopped reporting", conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}, want: true},
		{name: "other conditions only", conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue}}},
	}
	for _, tt := range tests {
		n := &corev1.Node{Status: corev1.NodeStatus{Conditions: tt.conditions}}
		if got := NodeNotReady(n); got != tt.want {
			t.Errorf("%s: NodeNotReady = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestDecideReady(t *testing.T) {
	complete := &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dNew}
	tests := []struct {
		name    string
		rollout *v1alpha1.RolloutStatus
		refused *metav1.Condition
		counts  v1alpha1.NodeCounts
		// wantReady and wantDegraded are the condition reasons.
		wantReady, wantDegraded string
		wantTrue                bool
	}{
		{name: "all attached", rollout: complete, counts: v1alpha1.NodeCounts{Selected: 3, Attached: 3},
			wantReady: v1alpha1.ReasonAllAttached, wantDegraded: v1alpha1.ReasonNoFailures, wantTrue: true},
		{name: "pending", rollout: complete, counts: v1alpha1.NodeCounts{Selected: 3, Attached: 2, Pending: 1},
			wantReady: v1alpha1.ReasonNodesPending, wantDegraded: v1alpha1.ReasonNoFailures},
		{name: "failed", rollout: complete, counts: v1alpha1.NodeCounts{Selected: 3, Attached: 2, Failed: 1},
			wantReady: v1alpha1.ReasonNodesFailed, wantDegraded: v1alpha1.ReasonNodesFailed},
		{name: "no nodes", rollout: complete,
			wantReady: v1alpha1.ReasonNoNodesSelected, wantDegraded: v1alpha1.ReasonNoFailures},
		{name: "nothing verified", counts: v1alpha1.NodeCounts{Selected: 3, Pending: 3},
			wantReady: v1alpha1.ReasonWaitingForBundle, wantDegraded: v1alpha1.ReasonNoFailures},
		{name: "new bundle refused while the old one runs", rollout: complete, counts: v1alpha1.NodeCounts{Selected: 3, Attached: 3},
			refused:   &metav1.Condition{Type: v1alpha1.ConditionSignatureVerified, Reason: v1alpha1.ReasonUnsigned, Message: "not signed"},
			wantReady: v1alpha1.ReasonUnsigned, wantDegraded: v1alpha1.ReasonNoFailures},
		{name: "halted", rollout: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, HaltedReason: "x"}, counts: v1alpha1.NodeCounts{Selected: 3, Attached: 3},
			wantReady: v1alpha1.ReasonRolloutHalted, wantDegraded: v1alpha1.ReasonRolloutHalted},
		{name: "in progress", rollout: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld}, counts: v1alpha1.NodeCounts{Selected: 3, Attached: 3},
			wantReady: v1alpha1.ReasonRolloutInProgress, wantDegraded: v1alpha1.ReasonNoFailures},
		{name: "kernel paused", rollout: &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld, Wave: 2,
			PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "n2", Reason: "x: VerifierRejected"}}},
			counts:    v1alpha1.NodeCounts{Selected: 3, Attached: 3},
			wantReady: v1alpha1.ReasonKernelsPaused, wantDegraded: v1alpha1.ReasonKernelsPaused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready, degraded := DecideReady(ReadyInput{Rollout: tt.rollout, Refused: tt.refused, Summary: Summary{Counts: tt.counts}})
			if ready.Reason != tt.wantReady || degraded.Reason != tt.wantDegraded || (ready.Status == metav1.ConditionTrue) != tt.wantTrue {
				t.Errorf("ready %s/%s degraded %s; want %s (true=%v) / %s", ready.Status, ready.Reason, degraded.Reason, tt.wantReady, tt.wantTrue, tt.wantDegraded)
			}
		})
	}
}

func TestCompatible(t *testing.T) {
	xdp := v1alpha1.ProgramAttachment{XDP: &v1alpha1.XDPAttach{}}
	tc := v1alpha1.ProgramAttachment{TC: &v1alpha1.TCAttach{Direction: v1alpha1.TCIngress}}
	tp := v1alpha1.ProgramAttachment{Tracepoint: &v1alpha1.TracepointAttach{}}
	rawtp := v1alpha1.ProgramAttachment{RawTracepoint: &v1alpha1.RawTracepointAttach{}}
	fentry := v1alpha1.ProgramAttachment{Fentry: &v1alpha1.FunctionAttach{}}
	fexit := v1alpha1.ProgramAttachment{Fexit: &v1alpha1.FunctionAttach{}}
	kprobe := v1alpha1.ProgramAttachment{Kprobe: &v1alpha1.KprobeAttach{}}
	uprobe := v1alpha1.ProgramAttachment{Uprobe: &v1alpha1.UprobeAttach{}}
	cgroup := func(hook v1alpha1.CgroupAttachType) v1alpha1.ProgramAttachment {
		return v1alpha1.ProgramAttachment{Cgroup: &v1alpha1.CgroupAttach{AttachType: hook}}
	}
	tests := []struct {
		attach     v1alpha1.ProgramAttachment // the spec's attach block
		progType   string                     // manifest type
		attachType string                     // manifest attach type
		want       bool
	}{
		{xdp, "xdp", "XDP", true},
		{tc, "sched_cls", "", true},
		{tc, "xdp", "", false},
		{tp, "tracepoint", "", true},
		{rawtp, "raw_tracepoint", "", true},
		{rawtp, "tracing", "TraceRawTp", true},
		// A tracing program is an fentry, fexit or tp_btf program, not all three.
		{rawtp, "tracing", "TraceFEntry", false},
		{fentry, "tracing", "TraceFEntry", true},
		{fentry, "tracing", "TraceFExit", false},
		{fexit, "kprobe", "", false},
		{kprobe, "kprobe", "", true},
		{uprobe, "kprobe", "", true},
		{cgroup("ingress"), "cgroup_skb", "CGroupInetIngress", true},
		{cgroup("egress"), "cgroup_skb", "CGroupInetIngress", true},
		{cgroup("connect4"), "cgroup_sock_addr", "CGroupInet4Connect", true},
		// A cgroup block takes the one type of its hook, not the family.
		{cgroup("device"), "cgroup_skb", "CGroupInetIngress", false},
		{cgroup("ingress"), "cgroup_device", "CGroupDevice", false},
		{cgroup("ingress"), "sock_ops", "CGroupSockOps", false},
		{xdp, "sched_cls", "", false},
		{xdp, "no_such_type", "", false},
	}
	for _, tt := range tests {
		p := &format.Program{Name: "p", Type: tt.progType, AttachType: tt.attachType}
		if got := Compatible(tt.attach, p); got != tt.want {
			t.Errorf("Compatible(%s, %s/%s) = %v, want %v", hooks.AttachType(tt.attach), tt.progType, tt.attachType, got, tt.want)
		}
	}
}

func TestSummarizeKeepsWhatAPausedReleaseLearned(t *testing.T) {
	p := testProgram(v1alpha1.RolloutAllAtOnce, &v1alpha1.RolloutStatus{TargetDigest: dNew, StableDigest: dOld,
		PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15", Node: "n2", Reason: "xdp_filter: VerifierRejected: R1 invalid mem access"}}})
	nodes := []NodeView{
		{Name: "n1", State: report("n1", "6.18", dNew, v1alpha1.PhaseAttached)},
		// n2 failed dNew, paused 5.15 and rolled back: it runs the stable digest.
		{Name: "n2", State: report("n2", "5.15", dOld, v1alpha1.PhaseAttached)},
		// n3 of 5.15 still reports dNew attached: it must return to dOld, so it is pending.
		{Name: "n3", State: report("n3", "5.15", dNew, v1alpha1.PhaseAttached)},
	}
	s := Summarize(SummaryInput{Program: p, Nodes: nodes})
	want := v1alpha1.NodeCounts{Selected: 3, Attached: 2, Pending: 1, Summary: "2/3"}
	if s.Counts != want {
		t.Errorf("counts %+v, want %+v", s.Counts, want)
	}
	wantKernels := []v1alpha1.KernelCompatibility{
		{Release: "5.15", Attached: 1, FirstFailure: "paused: n2: xdp_filter: VerifierRejected: R1 invalid mem access"},
		{Release: "6.18", Attached: 1},
	}
	if fmt.Sprint(s.Kernels) != fmt.Sprint(wantKernels) {
		t.Errorf("kernels %+v, want %+v", s.Kernels, wantKernels)
	}
}

// TestSignatureReason: a verification that failed because a trust key's
// Secret could not be read is transient (retried soon, never a verdict),
// even though the refusal it is joined with names a signature mismatch.
func TestSignatureReason(t *testing.T) {
	tests := []struct {
		err       error
		want      string
		transient bool
	}{
		{fmt.Errorf("x: %w", bundles.ErrRegistryUnavailable), v1alpha1.ReasonRegistryUnavailable, true},
		{errors.Join(fmt.Errorf("policy p: %w", bundles.ErrSignatureMismatch), fmt.Errorf("key k: %w", bundles.ErrKeyUnavailable)), v1alpha1.ReasonKeyUnavailable, true},
		{fmt.Errorf("x: %w", bundles.ErrSignatureMismatch), v1alpha1.ReasonSignatureMismatch, false},
		{fmt.Errorf("x: %w", bundles.ErrUnsigned), v1alpha1.ReasonUnsigned, false},
		{fmt.Errorf("x: %w", bundles.ErrAttachTypeDenied), v1alpha1.ReasonAttachTypeDenied, false},
	}
	for _, tt := range tests {
		got := signatureReason(tt.err)
		if got != tt.want || transientReason(got) != tt.transient {
			t.Errorf("signatureReason(%v) = %s (transient %v), want %s (%v)", tt.err, got, transientReason(got), tt.want, tt.transient)
		}
	}
}
