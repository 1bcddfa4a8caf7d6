package inventory

import (
	"sync"
	"time"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Scanner summarises the unmanaged programs of a node whose agent pins under
// Root. It remembers which programs were bpfleet's: a program the agent
// replaced or removed lingers in the kernel until its last link is freed
// (deferred work, RCU), and must not show up as unmanaged meanwhile. Kernel
// program ids are allocated cyclically, so an id is not reused while
// remembered; ids leave the memory when they leave the kernel. Its methods
// are safe for concurrent use.
type Scanner struct {
	// Root is the agent's bpffs root; programs pinned under it are bpfleet's.
	Root string
	// Limit is how many programs a summary lists; zero means MaxListed.
	Limit int
	// Proc is the procfs root owners are read from; default /proc (the
	// agent runs in the host's pid namespace).
	Proc string

	mu     sync.Mutex
	was    map[uint32]bool
	owners map[uint32]string // by program id, looked up once per program
}

// Unmanaged summarises the programs in the kernel that are neither among
// managed (by kernel id, as the dataplane reports them), nor pinned under
// Root, nor were either in an earlier scan.
func (s *Scanner) Unmanaged(managed []v1alpha1.ProgramState) (*v1alpha1.UnmanagedSummary, error) {
	all, err := Scan()
	if err != nil {
		return nil, err
	}
	ours, err := PinnedIDs(s.Root)
	if err != nil {
		return nil, err
	}
	for _, m := range managed {
		if m.ID != 0 {
			ours[m.ID] = true
		}
	}
	s.mu.Lock()
	inKernel := make(map[uint32]bool, len(all))
	for _, p := range all {
		inKernel[p.ID] = true
	}
	for id := range s.was {
		if inKernel[id] {
			ours[id] = true
		}
	}
	s.was = map[uint32]bool{}
	for id := range ours {
		if inKernel[id] {
			s.was[id] = true
		}
	}
	s.mu.Unlock()
	limit := s.Limit
	if limit <= 0 || limit > MaxListed {
		limit = MaxListed
	}
	sum := Summarize(all, ours, limit)
	s.fillOwners(sum, inKernel)
	return sum, nil
}

// fillOwners names the processes holding each listed program. Procfs is
// read only for programs not seen before, so an idle node reads it never
// and reports the same owners scan after scan.
func (s *Scanner) fillOwners(sum *v1alpha1.UnmanagedSummary, inKernel map[uint32]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.owners {
		if !inKernel[id] {
			delete(s.owners, id)
		}
	}
	if s.owners == nil {
		s.owners = map[uint32]string{}
	}
	want := map[uint32]bool{}
	for _, p := range sum.Programs {
		if _, ok := s.owners[p.ID]; !ok {
			want[p.ID] = true
		}
	}
	if len(want) > 0 {
		proc := s.Proc
		if proc == "" {
			proc = "/proc"
		}
		found := Owners(proc, want)
		for id := range want {
			s.owners[id] = joinBounded(found[id])
		}
	}
	for i := range sum.Programs {
		sum.Programs[i].Owners = s.owners[sum.Programs[i].ID]
	}
}

// Limiter lets at most one write through per Interval, so that a churning
// third-party loader cannot make the agent flood the API server. The first
// write always passes. Its methods are safe for concurrent use.
type Limiter struct {
	// Interval is the least time between two writes; zero or less lets
	// every write through.
	Interval time.Duration

	mu      sync.Mutex
	last    time.Time
	pending bool
}

// Allow tells whether a write may happen at now and, when not, how long
// until one may; a refusal leaves a write pending until Wrote or Settled.
func (l *Limiter) Allow(now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Interval <= 0 || l.last.IsZero() {
		return true, 0
	}
	if next := l.last.Add(l.Interval); now.Before(next) {
		l.pending = true
		return false, next.Sub(now)
	}
	return true, 0
}

// Wrote records a write at now.
func (l *Limiter) Wrote(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = now
	l.pending = false
}

// Settled drops a pending write that is no longer needed (what it would
// have written is what was written last).
func (l *Limiter) Settled() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = false
}

// Pending tells whether a refused write waits, and how long from now until
// it may happen.
func (l *Limiter) Pending(now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.pending {
		return 0, false
	}
	return max(l.last.Add(l.Interval).Sub(now), 0), true
}
