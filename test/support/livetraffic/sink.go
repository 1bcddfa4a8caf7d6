//go:build linux

package livetraffic

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sinkBuffer is the sink socket's receive buffer. A frame sent by XDP
// becomes an skb of a full page, so the default buffer (≈200 KiB) holds only
// ~50 datagrams: a burst would overflow it, and that loss is not what a test
// measures.
const sinkBuffer = 64 << 20

// Sink counts the UDP datagrams arriving at one address, by payload prefix.
type Sink struct {
	conn     net.PacketConn
	prefixes [][]byte
	done     chan struct{}
	mu       sync.Mutex
	counts   []uint64
}

// ListenUDP opens a sink on addr. enter, when not nil, runs the listen call,
// for example inside another network namespace (a netns.NS's Do); the
// socket stays in that namespace. Counts[i] will count payloads starting
// with prefixes[i] (the first that matches), Counts[len(prefixes)] the rest.
func ListenUDP(enter func(func() error) error, addr netip.AddrPort, prefixes ...[]byte) (*Sink, error) {
	var conn net.PacketConn
	listen := func() error {
		var err error
		conn, err = net.ListenPacket("udp", addr.String())
		return err
	}
	var err error
	if enter != nil {
		err = enter(listen)
	} else {
		err = listen()
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if err := forceReadBuffer(conn, sinkBuffer); err != nil {
		conn.Close()
		return nil, err
	}
	s := &Sink{conn: conn, prefixes: prefixes, done: make(chan struct{}), counts: make([]uint64, len(prefixes)+1)}
	go s.receive()
	return s, nil
}

func forceReadBuffer(conn net.PacketConn, size int) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("set receive buffer: %T has no file descriptor", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set SO_RCVBUFFORCE: %w", serr)
	}
	return nil
}

func (s *Sink) receive() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		kind := len(s.prefixes)
		for i, p := range s.prefixes {
			if bytes.HasPrefix(buf[:n], p) {
				kind = i
				break
			}
		}
		s.mu.Lock()
		s.counts[kind]++
		s.mu.Unlock()
	}
}

// Settle waits until no datagram has arrived for quiet (what was sent has
// arrived), at most 50 quiet periods, and returns the counts.
func (s *Sink) Settle(quiet time.Duration) []uint64 {
	var last uint64 = ^uint64(0)
	for range 50 {
		counts := s.Counts()
		var total uint64
		for _, c := range counts {
			total += c
		}
		if total == last {
			return counts
		}
		last = total
		time.Sleep(quiet)
	}
	return s.Counts()
}

// Counts returns the counts so far.
func (s *Sink) Counts() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.counts...)
}

// Close stops receiving.
func (s *Sink) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}
