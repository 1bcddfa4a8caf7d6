package v1alpha1

// MaxEventNote is the longest note the API server accepts on an Event
// (events.k8s.io/v1); a longer one is refused and the Event lost.
const MaxEventNote = 1024

// EventNote cuts s to MaxEventNote bytes, marking the cut with "...", so
// that the operator's and the agents' Events are never refused for length.
func EventNote(s string) string {
	if len(s) <= MaxEventNote {
		return s
	}
	return s[:MaxEventNote-3] + "..."
}
