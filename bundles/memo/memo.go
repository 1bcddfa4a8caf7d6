// Package memo keeps what a memo remembers: a bounded map from keys to
// values stamped with when they were stored, the oldest going first when
// it is full. The registry memos (remote.ManifestMemo, signing.Memo) and
// the agent's verification memo each decide what is worth remembering and
// for how long; a Store keeps the entries for them.
package memo

import (
	"sync"
	"time"
)

// Store holds up to a bound of values by key. The zero value is ready. It
// is safe for concurrent use.
type Store[V any] struct {
	mu      sync.Mutex
	entries map[string]entry[V]
}

type entry[V any] struct {
	v  V
	at time.Time
}

// Clock returns a memo's settings as it uses them: its clock now, or
// time.Now when nil, and its ttl, or def when not positive.
func Clock(now func() time.Time, ttl, def time.Duration) (func() time.Time, time.Duration) {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = def
	}
	return now, ttl
}

// Lookup returns the value stored for key and when it was stored.
func (s *Store[V]) Lookup(key string) (v V, at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	return e.v, e.at, ok
}

// Fresh returns the value stored for key when it was stored less than ttl
// before now.
func (s *Store[V]) Fresh(key string, now time.Time, ttl time.Duration) (v V, ok bool) {
	v, at, ok := s.Lookup(key)
	if !ok || now.Sub(at) >= ttl {
		var zero V
		return zero, false
	}
	return v, true
}

// Put stores v for key, stamped at, first dropping the oldest entry when
// the store holds max entries and key is not one of them.
func (s *Store[V]) Put(key string, v V, at time.Time, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[string]entry[V]{}
	}
	if _, ok := s.entries[key]; !ok && len(s.entries) >= max {
		var oldest string
		var oldestAt time.Time
		for k, e := range s.entries {
			if oldest == "" || e.at.Before(oldestAt) {
				oldest, oldestAt = k, e.at
			}
		}
		delete(s.entries, oldest)
	}
	s.entries[key] = entry[V]{v: v, at: at}
}

// Delete forgets key.
func (s *Store[V]) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
}

// Len is how many entries the store holds.
func (s *Store[V]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}
