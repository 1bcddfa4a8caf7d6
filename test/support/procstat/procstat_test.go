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
	// Spin until the kernel's own account (getrusage) says 200 ms of CPU
	// went by, however loaded the machine is, then compare the two.
	used0 := rusageCPU(t)
	for deadline := time.Now().Add(20 * time.Second); rusageCPU(t)-used0 < 200*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatal("no 200 ms of CPU in 20 s of spinning")
		}
	}
	after, err := procstat.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	used := rusageCPU(t) - used0
	if grew := after.CPU - before.CPU; grew < 150*time.Millisecond || grew > used+100*time.Millisecond {
		t.Errorf("CPU grew %s while getrusage counted %s of spinning", grew, used)
	}
	if after.RSSKiB <= 0 || after.HWMKiB < after.RSSKiB {
		t.Errorf("RSS %d KiB, peak %d KiB", after.RSSKiB, after.HWMKiB)
	}
	if _, err := procstat.Read(-1); err == nil {
		t.Error("read of pid -1 succeeded")
	}
}

// rusageCPU is procstat.SelfCPU, failing t on an error.
func rusageCPU(t *testing.T) time.Duration {
	t.Helper()
	d, err := procstat.SelfCPU()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
