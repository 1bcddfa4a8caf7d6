package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
)

func TestSelected(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"role": "edge", "zone": "a"}}}
	now := metav1.Now()
	prog := func(name string, sel *metav1.LabelSelector, deleting bool) v1alpha1.BpfProgram {
		p := v1alpha1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, Spec: v1alpha1.BpfProgramSpec{NodeSelector: sel}}
		if deleting {
			p.DeletionTimestamp = &now
		}
		return p
	}
	expr := func(op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: op, Values: values}}}
	}
	tests := []struct {
		name    string
		program v1alpha1.BpfProgram
		// onNode: the dataplane reports something of the program.
		onNode bool
		// want: the program is in the desired set.
		want bool
		// wantHeld: it is there only to keep what runs (InvalidNodeSelector).
		wantHeld bool
		wantErr  bool
	}{
		{name: "nil selector selects every node", program: prog("a", nil, false), want: true},
		{name: "empty selector selects every node", program: prog("b", &metav1.LabelSelector{}, false), want: true},
		{name: "matching label", program: prog("c", &metav1.LabelSelector{MatchLabels: map[string]string{"role": "edge"}}, false), want: true},
		{name: "other label value", program: prog("d", &metav1.LabelSelector{MatchLabels: map[string]string{"role": "core"}}, false)},
		{name: "other label value detaches what runs", program: prog("d2", &metav1.LabelSelector{MatchLabels: map[string]string{"role": "core"}}, false), onNode: true},
		{name: "expression NotIn", program: prog("e", expr(metav1.LabelSelectorOpNotIn, "a"), false)},
		{name: "being deleted is absent", program: prog("f", nil, true), onNode: true},
		{name: "bogus operator, nothing on the node: left out", program: prog("g", expr("Bogus"), false), wantErr: true},
		{name: "bogus operator, running: kept and held", program: prog("h", expr("Bogus"), false), onNode: true, want: true, wantHeld: true, wantErr: true},
		{name: "In without values, running: kept and held", program: prog("i", expr(metav1.LabelSelectorOpIn), false), onNode: true, want: true, wantHeld: true, wantErr: true},
		{name: "Exists with values, running: kept and held", program: prog("j", expr(metav1.LabelSelectorOpExists, "a"), false), onNode: true, want: true, wantHeld: true, wantErr: true},
		{name: "bad label key, running: kept and held", program: prog("k", &metav1.LabelSelector{MatchLabels: map[string]string{"a b": "x"}}, false), onNode: true, want: true, wantHeld: true, wantErr: true},
		{name: "invalid selector being deleted is absent", program: prog("l", expr("Bogus"), true), onNode: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, held, err := selected([]v1alpha1.BpfProgram{tt.program}, node, func(types.UID) bool { return tt.onNode })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if (len(got) == 1) != tt.want {
				t.Fatalf("selected = %d programs, want selected=%v", len(got), tt.want)
			}
			h := held[tt.program.UID]
			if (h != nil) != tt.wantHeld {
				t.Fatalf("held = %v, want held=%v", h, tt.wantHeld)
			}
			if h != nil && holdReason(h) != v1alpha1.ReasonInvalidNodeSelector {
				t.Fatalf("hold reason %s, want %s", holdReason(h), v1alpha1.ReasonInvalidNodeSelector)
			}
		})
	}
}

func TestHoldReason(t *testing.T) {
	tests := []struct {
		err       error
		reason    string
		transient bool
	}{
		{err: errWaitingForDigest, reason: v1alpha1.ReasonWaitingForWave},
		{err: fmt.Errorf("evaluate: %w: bad", errInvalidNodeSelector), reason: v1alpha1.ReasonInvalidNodeSelector},
		{err: fmt.Errorf("verify: %w", bundles.ErrUnsigned), reason: v1alpha1.ReasonVerifyFailed},
		{err: fmt.Errorf("verify: %w", bundles.ErrSignatureMismatch), reason: v1alpha1.ReasonVerifyFailed},
		{err: fmt.Errorf("verify: %w", bundles.ErrNoTrustPolicy), reason: v1alpha1.ReasonVerifyFailed},
		{err: fmt.Errorf("check: %w", bundles.ErrProgramTypeDenied), reason: v1alpha1.ReasonVerifyFailed},
		{err: fmt.Errorf("pull: %w", bundles.ErrRegistryUnavailable), reason: v1alpha1.ReasonPullFailed, transient: true},
		{err: fmt.Errorf("pull: %w", bundles.ErrDigestMismatch), reason: v1alpha1.ReasonPullFailed, transient: true},
		{err: dataplane.Hold(v1alpha1.ReasonVerifyFailed, fmt.Errorf("x: %w", bundles.ErrUnsigned)), reason: v1alpha1.ReasonVerifyFailed},
	}
	for _, tt := range tests {
		if got := holdReason(tt.err); got != tt.reason {
			t.Errorf("holdReason(%v) = %s, want %s", tt.err, got, tt.reason)
		}
		if got := transientHold(tt.err); got != tt.transient {
			t.Errorf("transientHold(%v) = %v, want %v", tt.err, got, tt.transient)
		}
	}
}

func TestExplainHolds(t *testing.T) {
	verifyErr := dataplane.Hold(v1alpha1.ReasonVerifyFailed, bundles.ErrSignatureMismatch)
	pullErr := dataplane.Hold(v1alpha1.ReasonPullFailed, bundles.ErrRegistryUnavailable)
	spec := v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{Name: "p1"}, {Name: "p2"}}}
	tests := []struct {
		name    string
		states  []v1alpha1.ProgramState
		desired []Desired
		want    []v1alpha1.ProgramState // State and Reason only
	}{
		{
			name:    "nothing held leaves states alone",
			states:  []v1alpha1.ProgramState{{UID: "a", State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached}},
			desired: []Desired{{UID: "a"}},
			want:    []v1alpha1.ProgramState{{State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached}},
		},
		{
			name:    "running program held by an outage stays Attached with the reason",
			states:  []v1alpha1.ProgramState{{UID: "a", State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached}},
			desired: []Desired{{UID: "a", Hold: pullErr}},
			want:    []v1alpha1.ProgramState{{State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonPullFailed}},
		},
		{
			name:    "never loaded and refused is Failed",
			states:  []v1alpha1.ProgramState{{UID: "a", State: v1alpha1.PhasePending}},
			desired: []Desired{{UID: "a", Hold: verifyErr}},
			want:    []v1alpha1.ProgramState{{State: v1alpha1.PhaseFailed, Reason: v1alpha1.ReasonVerifyFailed}},
		},
		{
			name:    "held program the dataplane does not report gets one entry per program",
			desired: []Desired{{UID: "b", Spec: spec, Hold: pullErr}},
			want: []v1alpha1.ProgramState{
				{State: v1alpha1.PhasePending, Reason: v1alpha1.ReasonPullFailed},
				{State: v1alpha1.PhasePending, Reason: v1alpha1.ReasonPullFailed},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainHolds(tt.states, tt.desired)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d entries, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i].State != tt.want[i].State || got[i].Reason != tt.want[i].Reason {
					t.Errorf("entry %d = %s/%s, want %s/%s", i, got[i].State, got[i].Reason, tt.want[i].State, tt.want[i].Reason)
				}
				if got[i].Reason != v1alpha1.ReasonAttached && got[i].Message == "" {
					t.Errorf("entry %d has no message", i)
				}
			}
		})
	}
}

func TestSetReadyCondition(t *testing.T) {
	attached := v1alpha1.ProgramState{BpfProgram: "a", Program: "p", State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached}
	tests := []struct {
		name       string
		programs   []v1alpha1.ProgramState
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{name: "no programs", wantStatus: metav1.ConditionTrue, wantReason: v1alpha1.ReasonAllAttached},
		{name: "all attached", programs: []v1alpha1.ProgramState{attached, attached}, wantStatus: metav1.ConditionTrue, wantReason: v1alpha1.ReasonAllAttached},
		{name: "held while running", programs: []v1alpha1.ProgramState{attached, {State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonPullFailed}},
			wantStatus: metav1.ConditionFalse, wantReason: v1alpha1.ReasonPullFailed},
		{name: "pending without a reason", programs: []v1alpha1.ProgramState{{State: v1alpha1.PhasePending}},
			wantStatus: metav1.ConditionFalse, wantReason: string(v1alpha1.PhasePending)},
		{name: "failure wins over waiting", programs: []v1alpha1.ProgramState{
			{State: v1alpha1.PhasePending, Reason: v1alpha1.ReasonWaitingForWave},
			{State: v1alpha1.PhaseFailed, Reason: v1alpha1.ReasonVerifierRejected}},
			wantStatus: metav1.ConditionFalse, wantReason: v1alpha1.ReasonVerifierRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &v1alpha1.BpfNodeStateStatus{Programs: tt.programs, Summary: summarize(tt.programs)}
			setReadyCondition(st)
			c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != tt.wantStatus || c.Reason != tt.wantReason {
				t.Fatalf("Ready = %+v, want %s/%s", c, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestStatusEqual(t *testing.T) {
	base := func() v1alpha1.BpfNodeStateStatus {
		st := v1alpha1.BpfNodeStateStatus{
			Kernel:   v1alpha1.KernelInfo{Release: "6.18", BTF: true},
			Programs: []v1alpha1.ProgramState{{BpfProgram: "a", ID: 7, State: v1alpha1.PhaseAttached, RunCount: 10, RunTimeNs: 100}},
		}
		setReadyCondition(&st)
		return st
	}
	tests := []struct {
		name      string
		mutate    func(*v1alpha1.BpfNodeStateStatus)
		withStats bool
		want      bool
	}{
		{name: "identical", mutate: func(*v1alpha1.BpfNodeStateStatus) {}, want: true},
		{name: "condition transition time only", mutate: func(s *v1alpha1.BpfNodeStateStatus) {
			s.Conditions[0].LastTransitionTime = metav1.NewTime(time.Unix(1, 0))
		}, want: true},
		{name: "stats only, not refreshing", mutate: func(s *v1alpha1.BpfNodeStateStatus) { s.Programs[0].RunCount = 99 }, want: true},
		{name: "stats only, refreshing", mutate: func(s *v1alpha1.BpfNodeStateStatus) { s.Programs[0].RunCount = 99 }, withStats: true},
		{name: "statistics read again, unchanged", mutate: func(s *v1alpha1.BpfNodeStateStatus) {
			now := metav1.NowMicro()
			s.StatsAt = &now
		}, withStats: true, want: true},
		{name: "unmanaged programs", mutate: func(s *v1alpha1.BpfNodeStateStatus) {
			s.Unmanaged = &v1alpha1.UnmanagedSummary{Count: 1, ByType: map[string]int32{"kprobe": 1}}
		}},
		{name: "nil and empty lists", mutate: func(s *v1alpha1.BpfNodeStateStatus) { s.Features = []v1alpha1.Feature{} }, want: true},
		{name: "program id", mutate: func(s *v1alpha1.BpfNodeStateStatus) { s.Programs[0].ID = 8 }},
		{name: "kernel", mutate: func(s *v1alpha1.BpfNodeStateStatus) { s.Kernel.BootID = "x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			tt.mutate(&b)
			if got := statusEqual(a, b, tt.withStats); got != tt.want {
				t.Fatalf("statusEqual = %v, want %v", got, tt.want)
			}
		})
	}
}

// countingVerifier answers from a script and counts calls.
type countingVerifier struct {
	calls int
	err   error
}

func (v *countingVerifier) Verify(context.Context, string, string, []v1alpha1.BundleTrustPolicy) (trust.Result, error) {
	v.calls++
	if v.err != nil {
		return trust.Result{}, v.err
	}
	return trust.Result{Policy: "p", KeyName: "k"}, nil
}

func TestVerifyMemo(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	inner := &countingVerifier{}
	m := &VerifyMemo{Verifier: inner, TTL: time.Minute, Now: func() time.Time { return now }}
	pol := []v1alpha1.BundleTrustPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: types.UID("u"), Generation: 1}}}

	if _, err := m.Verify(ctx, "r/x", "sha256:1", pol); err != nil || inner.calls != 1 {
		t.Fatalf("first verify: %v, %d calls", err, inner.calls)
	}
	if _, err := m.Verify(ctx, "r/x", "sha256:1", pol); err != nil || inner.calls != 1 {
		t.Fatalf("fresh entry should not verify again: %v, %d calls", err, inner.calls)
	}
	pol[0].Generation = 2
	if _, err := m.Verify(ctx, "r/x", "sha256:1", pol); err != nil || inner.calls != 2 {
		t.Fatalf("a changed policy must verify again: %v, %d calls", err, inner.calls)
	}
	now = now.Add(2 * time.Minute)
	inner.err = fmt.Errorf("get signature: %w", bundles.ErrRegistryUnavailable)
	v, err := m.Verify(ctx, "r/x", "sha256:1", pol)
	if err != nil || inner.calls != 3 || v.Policy != "p" {
		t.Fatalf("an outage after expiry keeps the earlier success: %+v, %v, %d calls", v, err, inner.calls)
	}
	inner.err = fmt.Errorf("verify: %w", bundles.ErrSignatureMismatch)
	if _, err := m.Verify(ctx, "r/x", "sha256:1", pol); !errors.Is(err, bundles.ErrSignatureMismatch) {
		t.Fatalf("a mismatch after expiry must fail, got %v", err)
	}
	inner.err = fmt.Errorf("get signature: %w", bundles.ErrRegistryUnavailable)
	if _, err := m.Verify(ctx, "r/x", "sha256:1", pol); !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("after a mismatch, an outage must not restore the old success, got %v", err)
	}
	if _, err := m.Verify(ctx, "r/x", "sha256:2", pol); err == nil {
		t.Fatal("an unknown digest during an outage must fail")
	}
}

// fixedInventory is an Inventory that always finds the same programs.
type fixedInventory struct{ summary *v1alpha1.UnmanagedSummary }

func (f fixedInventory) Unmanaged([]v1alpha1.ProgramState) (*v1alpha1.UnmanagedSummary, error) {
	return f.summary.DeepCopy(), nil
}

func TestUnmanagedHeldBackKeepsWhatWasWritten(t *testing.T) {
	one := &v1alpha1.UnmanagedSummary{Count: 1, ByType: map[string]int32{"xdp": 1}, Programs: []v1alpha1.UnmanagedProgram{{ID: 7, Type: "xdp"}}}
	two := &v1alpha1.UnmanagedSummary{Count: 2, ByType: map[string]int32{"xdp": 2}, Programs: []v1alpha1.UnmanagedProgram{{ID: 7, Type: "xdp"}, {ID: 9, Type: "xdp"}}}
	tests := []struct {
		name string
		// written is what the agent wrote last (nil: nothing yet).
		written *v1alpha1.UnmanagedSummary
		// cached is what the agent's cache shows, perhaps behind written.
		cached *v1alpha1.UnmanagedSummary
		// kernel is what a scan finds now.
		kernel *v1alpha1.UnmanagedSummary
		want   *v1alpha1.UnmanagedSummary
	}{
		{name: "first inventory passes", kernel: one, want: one},
		{name: "unchanged kernel keeps the status", written: one, cached: one, kernel: one, want: one},
		{name: "change held back keeps the status", written: one, cached: one, kernel: two, want: one},
		{name: "cache behind the last write, kernel unchanged", written: one, cached: nil, kernel: one, want: one},
		{name: "cache behind the last write, change held back", written: one, cached: nil, kernel: two, want: one},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reconciler{
				NodeName:         "n-" + t.Name(),
				Inventory:        fixedInventory{tt.kernel},
				UnmanagedLimiter: &inventory.Limiter{Interval: time.Hour},
				Written:          &WrittenStatus{},
			}
			// The cache holds resourceVersion 1; a write, when there was
			// one, replaced it with 2, which the cache has not seen yet.
			cached := &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{UID: "u", ResourceVersion: "1"}}
			cached.Status.Unmanaged = tt.cached.DeepCopy()
			if tt.written != nil {
				r.UnmanagedLimiter.Wrote(time.Now())
				written := &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{UID: "u", ResourceVersion: "2"}}
				written.Status.Unmanaged = tt.written.DeepCopy()
				r.Written.Wrote("1", written)
			}
			r.Written.Freshen(cached) // as report does before computing the status
			got := r.unmanaged(context.Background(), cached.Status.Unmanaged, nil)
			if !inventory.Same(got, tt.want) {
				t.Errorf("unmanaged = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWrittenStatus(t *testing.T) {
	state := func(uid, rv, release string) *v1alpha1.BpfNodeState {
		ns := &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "n", UID: types.UID(uid), ResourceVersion: rv}}
		ns.Status.Kernel.Release = release
		return ns
	}
	tests := []struct {
		name   string
		cached *v1alpha1.BpfNodeState
		// want is the release Freshen leaves in cached.
		want string
	}{
		{name: "cache behind the write shows what was written", cached: state("u1", "10", "old"), want: "new"},
		{name: "cache caught up is trusted", cached: state("u1", "11", "new"), want: "new"},
		{name: "another writer moved on: trusted", cached: state("u1", "12", "other"), want: "other"},
		{name: "object recreated: trusted", cached: state("u2", "10", "fresh"), want: "fresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w WrittenStatus
			before := tt.cached.Status.Kernel.Release
			if w.Freshen(tt.cached); tt.cached.Status.Kernel.Release != before {
				t.Fatalf("changed before any write")
			}
			w.Wrote("10", state("u1", "11", "new"))
			w.Freshen(tt.cached)
			if got := tt.cached.Status.Kernel.Release; got != tt.want {
				t.Errorf("release %q, want %q", got, tt.want)
			}
		})
	}
	// Once the cache caught up, a later stale read is not papered over:
	// the memory is gone (a newer write would have refreshed it).
	var w WrittenStatus
	w.Wrote("10", state("u1", "11", "new"))
	w.Freshen(state("u1", "11", "new"))
	stale := state("u1", "10", "old")
	w.Freshen(stale)
	if stale.Status.Kernel.Release != "old" {
		t.Errorf("freshened after the cache had caught up")
	}
}

func TestAwaitAdmission(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	program := func(uid string, age time.Duration, digest string) *v1alpha1.BpfProgram {
		p := &v1alpha1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: uid, UID: types.UID(uid), CreationTimestamp: metav1.NewTime(now.Add(-age))}}
		p.Status.ResolvedDigest = digest
		return p
	}
	digestFor := func(p *v1alpha1.BpfProgram) string { return p.Status.ResolvedDigest }
	tests := []struct {
		name       string
		sel        []*v1alpha1.BpfProgram
		snapshot   []v1alpha1.ProgramState
		wantKept   []string
		wantSettle time.Duration
	}{
		{name: "new, no digest yet: held back until the grace ends", sel: []*v1alpha1.BpfProgram{program("a", time.Second, "")},
			wantSettle: admissionGrace - time.Second},
		{name: "new with a digest: kept", sel: []*v1alpha1.BpfProgram{program("a", time.Second, "sha256:1")}, wantKept: []string{"a"}},
		{name: "older than the grace: reported waiting", sel: []*v1alpha1.BpfProgram{program("a", admissionGrace, "")}, wantKept: []string{"a"}},
		{name: "on the node already: never dropped", sel: []*v1alpha1.BpfProgram{program("a", time.Second, "")},
			snapshot: []v1alpha1.ProgramState{{UID: "a", State: v1alpha1.PhasePending}}, wantKept: []string{"a"}},
		{name: "created in the node's future: waits one grace at most", sel: []*v1alpha1.BpfProgram{program("a", -time.Hour, "")},
			wantSettle: admissionGrace},
		{name: "the first due sets the requeue", sel: []*v1alpha1.BpfProgram{program("a", time.Second, ""), program("b", 2*time.Second, ""), program("c", time.Hour, "")},
			wantKept: []string{"c"}, wantSettle: admissionGrace - 2*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, settle := awaitAdmission(tt.sel, tt.snapshot, digestFor, now)
			var names []string
			for _, p := range kept {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.wantKept) || settle != tt.wantSettle {
				t.Errorf("kept %v, settle %s; want %v, %s", names, settle, tt.wantKept, tt.wantSettle)
			}
		})
	}
}
