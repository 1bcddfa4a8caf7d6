package inventory_test

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/internal/inventory"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// BenchmarkScan measures one inventory of the kernel (what every resync
// costs) with n extra programs loaded, plus whatever else the kernel holds.
func BenchmarkScan(b *testing.B) {
	privileged.RequireRoot(b)
	for _, n := range []int{0, 100, 500} {
		b.Run(fmt.Sprintf("extra=%d", n), func(b *testing.B) {
			progs := make([]*ebpf.Program, 0, n)
			defer func() {
				for _, p := range progs {
					p.Close()
				}
			}()
			for i := range n {
				progs = append(progs, loadB(b, fmt.Sprintf("inv_bench_%d", i)))
			}
			var total int
			b.ResetTimer()
			for b.Loop() {
				all, err := inventory.Scan()
				if err != nil {
					b.Fatal(err)
				}
				total = len(all)
			}
			b.ReportMetric(float64(total), "programs")
		})
	}
}
