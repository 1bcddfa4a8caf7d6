package procstat_test

import (
	"os"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/test/support/procstat"
)

// TestReadSelf reads this process: CPU grows with work, memory is there.
func TestReadSelf(t *testing.T) {
	before, err := procstat.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
	}
	after, err := procstat.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.CPU-before.CPU < 100*time.Millisecond {
		t.Errorf("CPU grew %s over 200 ms of spinning", after.CPU-before.CPU)
	}
	if after.RSSKiB <= 0 || after.HWMKiB < after.RSSKiB {
		t.Errorf("RSS %d KiB, peak %d KiB", after.RSSKiB, after.HWMKiB)
	}
	if _, err := procstat.Read(-1); err == nil {
		t.Error("read of pid -1 succeeded")
	}
}
