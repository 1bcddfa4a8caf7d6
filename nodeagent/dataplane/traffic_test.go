package dataplane_test

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// traffic sends UDP datagrams from nsB to 10.77.0.1:port as fast as a
// paced loop allows, and counts what a socket in nsA receives.
type traffic struct {
	sent, received atomic.Int64
	stop           chan struct{}
	wg             sync.WaitGroup
}

func (e *env) startTraffic(t *testing.T, port int) *traffic {
	t.Helper()
	tr := &traffic{stop: make(chan struct{})}
	var rx *net.UDPConn
	if err := e.nsA.Do(t, func() error {
		var err error
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: port})
		return err
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	var tx net.Conn
	if err := e.nsB.Do(t, func() error {
		var err error
		tx, err = net.Dial("udp4", net.JoinHostPort("10.77.0.1", itoa(port)))
		return err
	}); err != nil {
		rx.Close()
		t.Fatalf("dial: %v", err)
	}
	tr.wg.Add(2)
	go func() {
		defer tr.wg.Done()
		buf := make([]byte, 64)
		for {
			_ = rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := rx.Read(buf); err == nil {
				tr.received.Add(1)
				continue
			}
			select {
			case <-tr.stop:
				return
			default:
			}
		}
	}()
	go func() {
		defer tr.wg.Done()
		for {
			select {
			case <-tr.stop:
				return
			default:
			}
			for i := 0; i < 20; i++ {
				if _, err := tx.Write([]byte("packet-of-death")); err == nil || errors.Is(err, syscall.ECONNREFUSED) {
					tr.sent.Add(1)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		tr.halt()
		rx.Close()
		tx.Close()
	})
	return tr
}

// halt stops sending, lets the last packets land and stops receiving.
func (tr *traffic) halt() {
	select {
	case <-tr.stop:
		return
	default:
	}
	time.Sleep(100 * time.Millisecond)
	close(tr.stop)
	tr.wg.Wait()
}

func itoa(n int) string { return strconv.Itoa(n) }
