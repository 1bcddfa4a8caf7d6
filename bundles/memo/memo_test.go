package memo_test

import (
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles/memo"
)

func TestStore(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var s memo.Store[string]
	s.Put("a", "first", t0, 2)
	s.Put("b", "second", t0.Add(time.Second), 2)
	for _, tc := range []struct {
		name      string
		key       string
		now       time.Time
		wantValue string
		wantFresh bool
	}{
		{"fresh within the TTL", "a", t0.Add(9 * time.Second), "first", true},
		{"stale at the TTL", "a", t0.Add(10 * time.Second), "", false},
		{"unknown key", "z", t0, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := s.Fresh(tc.key, tc.now, 10*time.Second)
			if v != tc.wantValue || ok != tc.wantFresh {
				t.Errorf("Fresh(%q) = %q, %v; want %q, %v", tc.key, v, ok, tc.wantValue, tc.wantFresh)
			}
		})
	}
	// Full: a new key drops the oldest ("a"); storing a held key drops none.
	s.Put("c", "third", t0.Add(2*time.Second), 2)
	if _, _, ok := s.Lookup("a"); ok || s.Len() != 2 {
		t.Errorf("after a third key in a store of 2: a kept=%v, len %d; want the oldest gone", ok, s.Len())
	}
	s.Put("b", "again", t0.Add(3*time.Second), 2)
	if v, at, ok := s.Lookup("b"); !ok || v != "again" || !at.Equal(t0.Add(3*time.Second)) || s.Len() != 2 {
		t.Errorf("Lookup(b) = %q, %v, %v (len %d); want the new value, nothing dropped", v, at, ok, s.Len())
	}
	s.Delete("b")
	if _, _, ok := s.Lookup("b"); ok {
		t.Error("b still held after Delete")
	}
}
