package loader_test

import (
	"testing"

	"github.com/bpfleet/bpfleet/test/support/leakcheck"
)

// TestMain fails the package when a test leaves a goroutine or an eBPF
// file descriptor behind.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}
