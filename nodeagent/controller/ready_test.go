package controller

import (
	"net"
	"net/http/httptest"
	"testing"
)

func TestListening(t *testing.T) {
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	_, openPort, _ := net.SplitHostPort(open.Addr().String())
	for _, tc := range []struct {
		name, addr string
		ready      bool
	}{
		{"listener on loopback", open.Addr().String(), true},
		{"any-address form dials loopback", ":" + openPort, true},
		{"nothing listening", closedAddr, false},
		{"malformed address", "9090", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := listening(tc.addr)(httptest.NewRequest("GET", "/readyz", nil))
			if (err == nil) != tc.ready {
				t.Fatalf("listening(%q) = %v, want ready=%v", tc.addr, err, tc.ready)
			}
		})
	}
}
