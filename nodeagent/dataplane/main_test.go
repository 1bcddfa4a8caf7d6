package dataplane_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (the
// netlink watcher, traffic generators).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
