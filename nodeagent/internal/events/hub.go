package events

import (
	"sync"
	"time"
)

// QueueLength is how many lines a stream consumer may lag behind; past it
// the consumer is cut off. It bounds the agent's memory per consumer (a
// few MiB), and is 160 ms of a 50k events/s output, so that a client that
// keeps up is not cut off by a scheduling hiccup of a busy node.
const QueueLength = 8192

// HistoryLength and HistoryBytes bound the lines kept per program for
// consumers that ask for the recent past (kubectl bpf events --since): the
// last HistoryLength lines, and no more than HistoryBytes of them.
const (
	HistoryLength = 1024
	HistoryBytes  = 1 << 20
)

// Subscription is one consumer of a program's lines.
//
// Every line published for it is either received from Lines or counted as
// lost: once it falls QueueLength lines behind it is cut off (Lines is
// closed after the queued lines), and the lines it would have got from then
// on are only counted, until End.
type Subscription struct {
	// Replay are the lines of the recent past the consumer asked for, to
	// be sent before Lines.
	Replay []Line
	// Lines receives each line; it is closed when the consumer is cut off.
	Lines   <-chan Line
	lines   chan Line
	program string
	match   func(namespace, pod string) bool
	// cut and lost are guarded by the hub's lock.
	cut  bool
	lost map[string]int // by output
}

// Line is one JSON line of an output's event. Its Data is shared between
// consumers and never changed.
type Line struct {
	Output string
	Data   []byte
}

// hub fans lines out to stream consumers without ever blocking a reader,
// and keeps each program's recent lines.
type hub struct {
	mu      sync.Mutex
	subs    map[*Subscription]bool
	history map[string]*history
}

// Subscribe returns the lines of program whose pod is in namespace (and
// named pod), any when empty, with the kept lines of the last since
// (none when 0) in Replay. End it with End.
func (s *Streamer) Subscribe(program, namespace, pod string, since time.Duration) *Subscription {
	ch := make(chan Line, QueueLength)
	sub := &Subscription{Lines: ch, lines: ch, program: program, match: func(ns, name string) bool {
		return (namespace == "" || ns == namespace) && (pod == "" || name == pod)
	}}
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[*Subscription]bool{}
	}
	h.subs[sub] = true
	if hist := h.history[program]; hist != nil && since > 0 {
		sub.Replay = hist.since(time.Now().Add(-since), sub.match)
	}
	return sub
}

// End removes sub and returns the lines it lost by output: those published
// after it was cut off, plus unsent, the lines it had taken from Lines (or
// that were still queued) but could not deliver, when it was cut off or
// unsent is not empty (a consumer that left on its own loses nothing).
func (s *Streamer) End(sub *Subscription, unsent map[string]int) map[string]int {
	h := &s.hub
	h.mu.Lock()
	delete(h.subs, sub)
	cut, lost := sub.cut, sub.lost
	if !cut {
		sub.cut = true
		close(sub.lines)
	}
	h.mu.Unlock()
	if !cut && len(unsent) == 0 {
		return nil
	}
	if lost == nil {
		lost = map[string]int{}
	}
	for o, n := range unsent {
		lost[o] += n
	}
	for line := range sub.lines { // still queued
		lost[line.Output]++
	}
	for o, n := range lost {
		s.metrics().dropped.WithLabelValues(sub.program, o, "slow-consumer").Add(float64(n))
	}
	return lost
}

// publish hands line to every matching consumer; one that is QueueLength
// behind is cut off, so a stalled client costs a bounded queue and never
// delays the reader. It also keeps line in the program's history, and
// returns the kept copy.
func (h *hub) publish(program, output string, id identity, line []byte) Line {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.history == nil {
		h.history = map[string]*history{}
	}
	hist := h.history[program]
	if hist == nil {
		hist = &history{}
		h.history[program] = hist
	}
	ns, pod := id.Namespace(), id.Pod()
	l := hist.add(time.Now(), ns, pod, Line{Output: output, Data: line})
	for sub := range h.subs {
		if sub.program != program || !sub.match(ns, pod) {
			continue
		}
		if !sub.cut {
			select {
			case sub.lines <- l:
				continue
			default:
				sub.cut = true
				close(sub.lines)
			}
		}
		if sub.lost == nil {
			sub.lost = map[string]int{}
		}
		sub.lost[output]++
	}
	return l
}

// forget drops the history of programs not in keep.
func (h *hub) forget(keep map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.history {
		if !keep[p] {
			delete(h.history, p)
		}
	}
}

// history is a ring of a program's last lines, bounded in count and bytes.
type history struct {
	ring  [HistoryLength]pastLine
	next  int // where the next line goes
	n     int
	bytes int
}

type pastLine struct {
	at      time.Time
	ns, pod string
	line    Line
}

// add keeps a copy of l, dropping the oldest lines to stay within bounds,
// and returns the copy (kept lines are never changed, so consumers share
// them).
func (r *history) add(at time.Time, ns, pod string, l Line) Line {
	l.Data = append([]byte(nil), l.Data...)
	size := len(l.Data)
	if size > HistoryBytes {
		return l
	}
	for r.n == HistoryLength || r.bytes+size > HistoryBytes {
		old := &r.ring[(r.next+HistoryLength-r.n)%HistoryLength]
		r.bytes -= len(old.line.Data)
		*old = pastLine{}
		r.n--
	}
	r.ring[r.next] = pastLine{at: at, ns: ns, pod: pod, line: l}
	r.next = (r.next + 1) % HistoryLength
	r.n++
	r.bytes += size
	return l
}

// since returns the kept lines at or after from that match, oldest first.
func (r *history) since(from time.Time, match func(ns, pod string) bool) []Line {
	var out []Line
	for i := r.n; i > 0; i-- {
		k := &r.ring[(r.next+HistoryLength-i)%HistoryLength]
		if !k.at.Before(from) && match(k.ns, k.pod) {
			out = append(out, k.line)
		}
	}
	return out
}
