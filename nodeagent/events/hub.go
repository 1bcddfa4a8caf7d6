package events

import (
	"sync"
)

// QueueLength is how many lines a stream consumer may lag behind; past it
// the consumer is cut off. It bounds the agent's memory per consumer.
const QueueLength = 1024

// Subscription is one consumer of a program's lines.
type Subscription struct {
	// Lines receives each line; it is closed when the consumer fell
	// QueueLength lines behind (then Dropped says how many it lost).
	Lines   <-chan []byte
	lines   chan []byte
	program string
	match   func(identity) bool
	mu      sync.Mutex
	closed  bool
	dropped int
}

// Dropped is how many lines the consumer lost by lagging.
func (s *Subscription) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// hub fans lines out to stream consumers without ever blocking a reader.
type hub struct {
	mu   sync.Mutex
	subs map[*Subscription]bool
}

// Subscribe returns the lines of program whose pod is in namespace (and
// named pod), any when empty. Cancel ends it.
func (s *Streamer) Subscribe(program, namespace, pod string) (*Subscription, func()) {
	ch := make(chan []byte, QueueLength)
	sub := &Subscription{Lines: ch, lines: ch, program: program, match: func(id identity) bool {
		return (namespace == "" || id.Namespace() == namespace) && (pod == "" || id.Pod() == pod)
	}}
	h := &s.hub
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*Subscription]bool{}
	}
	h.subs[sub] = true
	h.mu.Unlock()
	return sub, func() { h.remove(sub) }
}

func (h *hub) remove(sub *Subscription) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
	sub.mu.Lock()
	if !sub.closed {
		sub.closed = true
		close(sub.lines)
	}
	sub.mu.Unlock()
}

// publish hands a copy of line to every matching consumer; one that is
// QueueLength behind is cut off, so a stalled client costs a bounded queue
// and never delays the reader.
func (h *hub) publish(program string, id identity, line []byte) {
	h.mu.Lock()
	var slow []*Subscription
	for sub := range h.subs {
		if sub.program != program || !sub.match(id) {
			continue
		}
		select {
		case sub.lines <- append([]byte(nil), line...):
		default:
			sub.mu.Lock()
			sub.dropped++
			sub.mu.Unlock()
			slow = append(slow, sub)
		}
	}
	h.mu.Unlock()
	for _, sub := range slow {
		h.remove(sub)
	}
}
