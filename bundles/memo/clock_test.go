package memo_test

import (
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles/memo"
)

// TestClock: a memo's unset clock is time.Now and its unset (or negative)
// TTL the memo's default; set ones stand.
func TestClock(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		now     func() time.Time
		ttl     time.Duration
		wantTTL time.Duration
		wantNow bool // now() is fixed
	}{
		{name: "unset", wantTTL: time.Minute},
		{name: "negative TTL", ttl: -time.Second, wantTTL: time.Minute},
		{name: "set", now: func() time.Time { return fixed }, ttl: time.Second, wantTTL: time.Second, wantNow: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now, ttl := memo.Clock(tt.now, tt.ttl, time.Minute)
			if ttl != tt.wantTTL {
				t.Errorf("ttl %s, want %s", ttl, tt.wantTTL)
			}
			if got := now(); got.Equal(fixed) != tt.wantNow {
				t.Errorf("now() = %s; the set clock used: %v", got, tt.wantNow)
			}
		})
	}
}
