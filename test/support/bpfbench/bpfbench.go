// Package bpfbench measures eBPF programs with BPF_PROG_RUN against a
// baseline program in the same run, for the benchmarks of bpf/.
package bpfbench

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf"
)

// ProgRun measures prog and the baseline program on the same frame in
// alternating rounds of BPF_PROG_RUN with repeat (b.N split over the
// rounds), and reports kernel-measured medians: the program's ns/packet, the
// baseline's, and the program's cost above the baseline. Alternating keeps
// both under the same machine load. It returns the two medians (program,
// baseline) for benchmarks that report a ratio of their own.
func ProgRun(b *testing.B, baseline, prog *ebpf.Program, in []byte, want uint32) (progMedian, baseMedian float64) {
	b.Helper()
	const rounds = 9
	repeat := max(b.N/rounds, 1)
	var progNs, baseNs, deltaNs []float64
	for range rounds {
		_, base, err := baseline.Benchmark(in, repeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		ret, per, err := prog.Benchmark(in, repeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("verdict %d, want %d", ret, want)
		}
		progNs = append(progNs, float64(per.Nanoseconds()))
		baseNs = append(baseNs, float64(base.Nanoseconds()))
		deltaNs = append(deltaNs, float64(per.Nanoseconds()-base.Nanoseconds()))
	}
	progMedian, baseMedian = Median(progNs), Median(baseNs)
	b.ReportMetric(progMedian, "ns/packet")
	b.ReportMetric(baseMedian, "baseline-ns/packet")
	b.ReportMetric(Median(deltaNs), "over-baseline-ns/packet")
	return progMedian, baseMedian
}

// Median is the middle value of xs (the upper one of an even count).
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
