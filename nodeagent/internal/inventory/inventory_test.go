package inventory_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
)

func programs(n int, typ string, firstID uint32) []inventory.Program {
	out := make([]inventory.Program, n)
	for i := range out {
		out[i] = inventory.Program{ID: firstID + uint32(i), Type: typ, Name: fmt.Sprintf("p%d", firstID+uint32(i))}
	}
	return out
}

func TestSummarize(t *testing.T) {
	loaded := time.Date(2026, 11, 22, 6, 0, 0, 700_000_000, time.UTC)
	tests := []struct {
		name string
		all  []inventory.Program
		// ours are the ids bpfleet loaded.
		ours  map[uint32]bool
		limit int
		// wantCount and wantByType are the summary's counts.
		wantCount  int32
		wantByType map[string]int32
		// wantIDs are the listed ids, in order.
		wantIDs []uint32
	}{
		{
			name:       "nothing loaded",
			limit:      20,
			wantByType: nil,
		},
		{
			name:       "ours are left out",
			all:        append(programs(2, "xdp", 10), programs(1, "cgroup_skb", 3)...),
			ours:       map[uint32]bool{10: true},
			limit:      20,
			wantCount:  2,
			wantByType: map[string]int32{"xdp": 1, "cgroup_skb": 1},
			wantIDs:    []uint32{11, 3},
		},
		{
			name:       "only ours",
			all:        programs(2, "xdp", 10),
			ours:       map[uint32]bool{10: true, 11: true},
			limit:      20,
			wantByType: nil,
		},
		{
			name:       "the newest are listed up to the limit, all are counted",
			all:        append(programs(30, "cgroup_device", 100), programs(5, "kprobe", 1)...),
			limit:      20,
			wantCount:  35,
			wantByType: map[string]int32{"cgroup_device": 30, "kprobe": 5},
			wantIDs:    []uint32{129, 128, 127, 126, 125, 124, 123, 122, 121, 120, 119, 118, 117, 116, 115, 114, 113, 112, 111, 110},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.all {
				tt.all[i].LoadedAt = loaded
				tt.all[i].AttachPoints = []string{"xdp/ifindex:1", "xdp/ifindex:2"}
			}
			sum := inventory.Summarize(tt.all, tt.ours, tt.limit)
			if sum.Count != tt.wantCount || fmt.Sprint(sum.ByType) != fmt.Sprint(tt.wantByType) {
				t.Errorf("count %d, byType %v; want %d, %v", sum.Count, sum.ByType, tt.wantCount, tt.wantByType)
			}
			var ids []uint32
			for _, p := range sum.Programs {
				ids = append(ids, p.ID)
				if p.LoadedAt == nil || !p.LoadedAt.Equal(&metav1.Time{Time: loaded.Truncate(time.Second)}) {
					t.Errorf("program %d loadedAt %v, want %v to the second", p.ID, p.LoadedAt, loaded)
				}
				if p.AttachPoint != "xdp/ifindex:1,xdp/ifindex:2" || p.Name == "" || p.Type == "" {
					t.Errorf("program %d: %+v", p.ID, p)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantIDs) {
				t.Errorf("listed %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

func summary(ids ...uint32) *v1alpha1.UnmanagedSummary {
	s := &v1alpha1.UnmanagedSummary{Count: int32(len(ids)), ByType: map[string]int32{}}
	for _, id := range ids {
		t := metav1.NewTime(time.Unix(int64(1_700_000_000+id), 0))
		s.Programs = append(s.Programs, v1alpha1.UnmanagedProgram{ID: id, Type: "kprobe", Name: fmt.Sprint("p", id), LoadedAt: &t})
		s.ByType["kprobe"]++
	}
	return s
}

func TestSame(t *testing.T) {
	wobbled := summary(1, 2)
	later := metav1.NewTime(wobbled.Programs[0].LoadedAt.Add(time.Second))
	wobbled.Programs[0].LoadedAt = &later
	renamed := summary(1, 2)
	renamed.Programs[1].Name = "other"
	retyped := summary(1, 2)
	retyped.ByType = map[string]int32{"kprobe": 1, "xdp": 1}
	tests := []struct {
		name string
		a, b *v1alpha1.UnmanagedSummary
		want bool
	}{
		{"both absent", nil, nil, true},
		{"one absent", nil, summary(), false},
		{"equal", summary(1, 2), summary(1, 2), true},
		{"load time wobbles by a second", summary(1, 2), wobbled, true},
		{"a program came", summary(1, 2), summary(1, 2, 3), false},
		{"a program was replaced", summary(1, 2), summary(1, 3), false},
		{"renamed", summary(1, 2), renamed, false},
		{"counted under another type", summary(1, 2), retyped, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := inventory.Same(tt.a, tt.b); got != tt.want {
				t.Errorf("Same = %t, want %t", got, tt.want)
			}
		})
	}
}

func TestKeepLoadTimes(t *testing.T) {
	prev, next := summary(1, 2), summary(2, 3)
	moved := metav1.NewTime(next.Programs[0].LoadedAt.Add(time.Second))
	next.Programs[0].LoadedAt = &moved
	inventory.KeepLoadTimes(prev, next)
	if !next.Programs[0].LoadedAt.Equal(prev.Programs[1].LoadedAt) {
		t.Errorf("program 2 loadedAt %v, want the reported %v", next.Programs[0].LoadedAt, prev.Programs[1].LoadedAt)
	}
	if next.Programs[1].LoadedAt == nil {
		t.Errorf("program 3 lost its load time")
	}
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name       string
		prev, next *v1alpha1.UnmanagedSummary
		want       []string
		notWant    []string
	}{
		{"first report", nil, summary(7), []string{"1 unmanaged programs (was 0)", "new: 7 kprobe p7"}, []string{"gone"}},
		{"one came, one went", summary(1, 2), summary(2, 3), []string{"2 unmanaged programs (was 2)", "new: 3 kprobe p3", "gone or no longer listed: 1 kprobe p1"}, nil},
		{"many came", summary(), summary(1, 2, 3, 4, 5, 6, 7), []string{"new: 1 kprobe p1, 2 kprobe p2, 3 kprobe p3, 4 kprobe p4, 5 kprobe p5 and 2 more"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inventory.Changes(tt.prev, tt.next)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("%q has %q", got, w)
				}
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		interval time.Duration
		// wrote is when earlier writes happened (none: a fresh limiter).
		wrote []time.Time
		now   time.Time
		// wantOK and wantWait are Allow's answers at now.
		wantOK   bool
		wantWait time.Duration
	}{
		{name: "first write passes", interval: 30 * time.Second, now: t0, wantOK: true},
		{name: "too soon after a write", interval: 30 * time.Second, wrote: []time.Time{t0}, now: t0.Add(10 * time.Second), wantWait: 20 * time.Second},
		{name: "an interval after a write", interval: 30 * time.Second, wrote: []time.Time{t0}, now: t0.Add(30 * time.Second), wantOK: true},
		{name: "counts from the last write", interval: 30 * time.Second, wrote: []time.Time{t0, t0.Add(40 * time.Second)}, now: t0.Add(60 * time.Second), wantWait: 10 * time.Second},
		{name: "no interval lets everything through", wrote: []time.Time{t0}, now: t0, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &inventory.Limiter{Interval: tt.interval}
			for _, w := range tt.wrote {
				l.Wrote(w)
			}
			ok, wait := l.Allow(tt.now)
			if ok != tt.wantOK || wait != tt.wantWait {
				t.Errorf("Allow = %t, %s; want %t, %s", ok, wait, tt.wantOK, tt.wantWait)
			}
			if pw, pending := l.Pending(tt.now); pending == ok || pw != wait {
				t.Errorf("Pending = %s, %t after Allow = %t, %s", pw, pending, ok, wait)
			}
			l.Settled()
			if _, pending := l.Pending(tt.now); pending {
				t.Errorf("still pending after Settled")
			}
		})
	}
}
