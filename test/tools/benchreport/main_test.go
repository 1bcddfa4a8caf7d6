package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sample = `goos: linux
pkg: github.com/bpfleet/bpfleet/bpf/xdpfilter
BenchmarkProgRun/3_rules_pass-2   	 1800000	        60.00 ns/packet	        30.00 baseline-ns/packet	        30.00 over-baseline-ns/packet
BenchmarkProgRun/3_rules_pass-2   	 1800000	        70.00 ns/packet	        35.00 baseline-ns/packet	        35.00 over-baseline-ns/packet
BenchmarkDropRateXDPvsNftables-2   	       1	   9000000000 ns/op	         3.000 xdp-Mpps	         1.000 nft-Mpps	         3.000 xdp/nft
pkg: github.com/bpfleet/bpfleet/test/e2e
BenchmarkApplyToAttached-2   	       5	 400000000 ns/op	        90.00 ms-apply-to-attached	        60.00 ms-bpftool-load-attach	        40.00 ms-agent-load	        50.00 ms-bpftool-load
BenchmarkDropRateVsCeiling-2   	       1	   9000000000 ns/op	         2.000 3-rules-Mpps	         9.000 3-rules-cpu-Mpps	         0.9000 3-rules/ceiling-cpu	         5.000 64-rules-cpu-Mpps	         0.5000 64-rules/ceiling	         10.00 drop-all-cpu-Mpps	         4.000 drop-all-Mpps
pkg: github.com/bpfleet/bpfleet/bpf/xdplb
BenchmarkVsTXCeiling/udp4-to-vip-2   	 1800000	        40.00 ns/packet	        10.00 baseline-ns/packet	        30.00 over-baseline-ns/packet	         0.2500 share-of-ceiling
BenchmarkLiveVsTXCeiling/udp4-to-vip-2   	       1	 9000000000 ns/op	         1.000 lb-Mpps	         2.000 tx-Mpps	         6.000 lb-cpu-Mpps	         8.000 tx-cpu-Mpps	         0.7400 share-cpu	         1.000 lb-returned
pkg: github.com/bpfleet/bpfleet/bundles
BenchmarkSign/key-file-2   	      10	 140000000 ns/op
ok  	github.com/bpfleet/bpfleet/bundles	3.2s
pkg: github.com/bpfleet/bpfleet/test/scale
BenchmarkFleetRollout-2   	--- FAIL: BenchmarkFleetRollout
FAIL	github.com/bpfleet/bpfleet/test/scale	30.1s
`

func TestRender(t *testing.T) {
	results, failed, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	table := render(results, failed, "test machine", time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC))
	tests := []struct {
		name string
		// want is a row (or part of one) the table must hold.
		want string
	}{
		{"median and range over repeats, baseline and ratio", "| ProgRun/3_rules_pass | ns/packet | 65.0 (60.0–70.0, n=2) | 32.5 (30.0–35.0, n=2) baseline-ns/packet | 2.00× |"},
		{"delta metric kept without baseline", "| ProgRun/3_rules_pass | over-baseline-ns/packet | 32.5 (30.0–35.0, n=2) | — | — |"},
		{"paired throughput", "| DropRateXDPvsNftables | xdp-Mpps | 3.00 | 1.00 nft-Mpps | 3.00× |"},
		{"plain ns/op", "| Sign/key-file | ns/op | 140000000 | — | — | `go test -run '^$' -bench '^BenchmarkSign$' ./bundles` |"},
		{"goal not met", "| ApplyToAttached | ms-apply-to-attached | 90.0 | 60.0 ms-bpftool-load-attach | 1.50× (goal ≤ 1.20: not met) |"},
		{"ratio without a goal", "| ApplyToAttached | ms-agent-load | 40.0 | 50.0 ms-bpftool-load | 0.80× |"},
		{"goal met against the ceiling", "| DropRateVsCeiling | 3-rules-cpu-Mpps | 9.00 | 10.0 drop-all-cpu-Mpps | 0.90× (goal ≥ 0.80: **met**) |"},
		{"goal not met against the ceiling", "| DropRateVsCeiling | 64-rules-cpu-Mpps | 5.00 | 10.0 drop-all-cpu-Mpps | 0.50× (goal ≥ 0.80: not met) |"},
		{"wall rate against its ceiling, no goal", "| DropRateVsCeiling | 3-rules-Mpps | 2.00 | 4.00 drop-all-Mpps | 0.50× |"},
		{"share with BPF_PROG_RUN, no goal", "| VsTXCeiling/udp4-to-vip | share-of-ceiling | 0.25 | — | — |"},
		{"load balancer on live traffic against XDP_TX", "| LiveVsTXCeiling/udp4-to-vip | lb-cpu-Mpps | 6.00 | 8.00 tx-cpu-Mpps | 0.75× (goal ≥ 0.80: not met) |"},
		{"its wall rate, no goal", "| LiveVsTXCeiling/udp4-to-vip | lb-Mpps | 1.00 | 2.00 tx-Mpps | 0.50× |"},
		{"machine line", "Machine: test machine."},
		{"failed benchmarks named", "**Failed in this run** (their figures above, if any, are from the repeats that passed): test/scale BenchmarkFleetRollout."},
	}
	for _, tt := range tests {
		if !strings.Contains(table, tt.want) {
			t.Errorf("%s: table lacks %q:\n%s", tt.name, tt.want, table)
		}
	}
	for _, unwanted := range []string{"| baseline-ns/packet |", "| xdp/nft |", "DropRateXDPvsNftables | ns/op", "| 3-rules/ceiling |", "| 3-rules/ceiling-cpu |", "| drop-all-Mpps |", "| drop-all-cpu-Mpps |", "| share-cpu |", "| tx-cpu-Mpps |"} {
		if strings.Contains(table, unwanted) {
			t.Errorf("table has %q:\n%s", unwanted, table)
		}
	}
}

func TestUpdateReplacesOnlyTheGeneratedBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte("# Head\n"+beginMarker+"\nold\n"+endMarker+"\n## Tail\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := update(path, "new\n"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if got, want := string(data), "# Head\n"+beginMarker+"\nnew\n"+endMarker+"\n## Tail\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestGoalMet(t *testing.T) {
	results, failed, err := parse(strings.NewReader("pkg: github.com/bpfleet/bpfleet/test/e2e\n" +
		"BenchmarkApplyToAttached-2   	       5	 400000000 ns/op	        70.00 ms-apply-to-attached	        60.00 ms-bpftool-load-attach\n"))
	if err != nil {
		t.Fatal(err)
	}
	table := render(results, failed, "test machine", time.Now())
	if want := "| 1.17× (goal ≤ 1.20: **met**) |"; !strings.Contains(table, want) {
		t.Fatalf("table lacks %q:\n%s", want, table)
	}
}
