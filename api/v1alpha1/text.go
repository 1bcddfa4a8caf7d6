package v1alpha1

import "strings"

// MaxEventNote is the longest note the API server accepts on an Event
// (events.k8s.io/v1); a longer one is refused and the Event lost.
const MaxEventNote = 1024

// EventNote cuts s to MaxEventNote bytes, marking the cut with "...", so
// that the operator's and the agents' Events are never refused for length.
func EventNote(s string) string { return Truncate(s, MaxEventNote) }

// Truncate cuts s to at most n bytes (n > 3), marking the cut with "...":
// the one way bpfleet shortens a message for a status field, an Event or a
// table column.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// ShortDigest is a sha256 digest's first 12 hex digits, without the
// algorithm: the form of status.shortDigest, and of every digest bpfleet
// names in a message or a table. Shorter input is returned without its
// "sha256:".
func ShortDigest(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}
