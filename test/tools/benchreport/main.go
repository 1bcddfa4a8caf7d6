// Command benchreport turns `go test -bench` output into the Markdown table
// of BENCHMARKS.md: one row per metric, with the baseline the same benchmark
// measured in the same run and the ratio between them, the command that
// reproduces it, and a line naming the machine. With -count > 1 a row shows
// the median and the min–max over the repeats.
//
//	go test -run '^$' -bench . ./... | go run ./test/tools/benchreport -o BENCHMARKS.md
//
// With -scenario make-target=report.md, the goal rows of a scale
// scenario's report (test/scale's -scale.report) follow the table.
//
// It rewrites only the part of the file between the generated markers.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	beginMarker = "<!-- benchreport:begin -->"
	endMarker   = "<!-- benchreport:end -->"
)

// baselines pairs a metric with the baseline metric the same benchmark
// reports in the same run.
var baselines = map[string]string{
	"ns/packet":                 "baseline-ns/packet",
	"xdp-Mpps":                  "nft-Mpps",
	"kernel-filter-cpu-ns/open": "user-filter-cpu-ns/open",
	"ms-apply-to-attached":      "ms-bpftool-load-attach",
	"ms-agent-load":             "ms-bpftool-load",
	"ms-agent-attach":           "ms-bpftool-attach",
	"ms-readopt-10-programs":    "ms-load-attach-10-programs",
	// The packet-of-death filter against an unconditional XDP_DROP on the
	// same traffic (BenchmarkDropRateVsCeiling).
	"3-rules-Mpps":            "drop-all-Mpps",
	"64-rules-Mpps":           "drop-all-Mpps",
	"64-rules-same-port-Mpps": "drop-all-Mpps",
	"3-rules-indexed-Mpps":    "drop-all-Mpps",
	"64-rules-scan-Mpps":      "drop-all-Mpps",
	// The same per second of the sending thread's CPU, which runs the
	// receiver's XDP program too: the goal's figure, since under load the
	// wall rate also counts the time other processes held the CPU.
	"3-rules-cpu-Mpps":            "drop-all-cpu-Mpps",
	"64-rules-cpu-Mpps":           "drop-all-cpu-Mpps",
	"64-rules-same-port-cpu-Mpps": "drop-all-cpu-Mpps",
	"3-rules-indexed-cpu-Mpps":    "drop-all-cpu-Mpps",
	"64-rules-scan-cpu-Mpps":      "drop-all-cpu-Mpps",
	// The one-arm load balancer against an unconditional XDP_TX on the same
	// traffic (BenchmarkLiveVsTXCeiling), per wall second and per CPU second.
	"lb-Mpps":     "tx-Mpps",
	"lb-cpu-Mpps": "tx-cpu-Mpps",
}

// goal is an issue goal a row is held to: the ratio to the baseline (or
// the figure itself, without a baseline) must be at least (or, atMost, at
// most) limit.
type goal struct {
	limit  float64
	atMost bool
}

// goals are the goals of some rows, by "benchmark metric".
var goals = map[string]goal{
	"ApplyToAttached ms-apply-to-attached": {1.2, true},  // issue 21, item 1: as fast as bpftool
	"DropRateVsCeiling 3-rules-cpu-Mpps":   {0.8, false}, // issue 21, item 4
	"DropRateVsCeiling 64-rules-cpu-Mpps":  {0.8, false},
	// The load balancer's goal is held on live traffic: with BPF_PROG_RUN
	// (VsTXCeiling) the ceiling is the harness's own 8–11 ns.
	"LiveVsTXCeiling/udp4-to-vip lb-cpu-Mpps": {0.8, false},
	"LiveVsTXCeiling/udp6-to-vip lb-cpu-Mpps": {0.8, false},
}

// check says the goal and whether against meets it.
func (g goal) check(against float64) string {
	if g.atMost {
		return fmt.Sprintf("goal ≤ %.2f: %s", g.limit, metOrNot(against <= g.limit))
	}
	return fmt.Sprintf("goal ≥ %.2f: %s", g.limit, metOrNot(against >= g.limit))
}

// derived are ratios benchmarks report themselves; the table computes them
// from the pair instead.
var derived = map[string]bool{"xdp/nft": true, "user/kernel": true, "bpfleet/bpftool": true,
	"3-rules/ceiling": true, "64-rules/ceiling": true, "64-rules-same-port/ceiling": true, "3-rules-indexed/ceiling": true, "64-rules-scan/ceiling": true,
	"share-cpu": true, "3-rules/ceiling-cpu": true, "64-rules/ceiling-cpu": true, "64-rules-same-port/ceiling-cpu": true, "3-rules-indexed/ceiling-cpu": true, "64-rules-scan/ceiling-cpu": true}

func main() {
	out := flag.String("o", "", "Markdown file to update between the benchreport markers (default: print the table)")
	var scenarios scenarioFlags
	flag.Var(&scenarios, "scenario", "make-target=report.md of a scale scenario whose goal rows join the table (repeatable)")
	flag.Parse()
	results, failed, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	table := render(results, failed, machine(), time.Now().UTC())
	goalRows, err := scenarioGoals(scenarios)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	table += goalRows
	if *out == "" {
		fmt.Print(table)
		return
	}
	if err := update(*out, table); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// result is one benchmark's metrics over its repeats.
type result struct {
	pkg, name string
	metrics   map[string][]float64
	order     []string
}

var (
	lineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	failRE = regexp.MustCompile(`--- FAIL: (Benchmark\S+?)(?:-\d+)?$`)
)

// parse reads benchmark results, and the benchmarks that failed (as
// "package BenchmarkName"), from `go test -bench` output.
func parse(r io.Reader) (results []*result, failed []string, err error) {
	var (
		pkg   string
		byKey = map[string]*result{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if m := failRE.FindStringSubmatch(line); m != nil {
			failed = append(failed, strings.TrimPrefix(pkg, "github.com/bpfleet/bpfleet/")+" "+m[1])
			continue
		}
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := pkg + " " + m[1]
		res := byKey[key]
		if res == nil {
			res = &result{pkg: pkg, name: m[1], metrics: map[string][]float64{}}
			byKey[key] = res
			results = append(results, res)
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("parse %q: %w", line, err)
			}
			unit := f[i+1]
			if _, seen := res.metrics[unit]; !seen {
				res.order = append(res.order, unit)
			}
			res.metrics[unit] = append(res.metrics[unit], v)
		}
	}
	return results, failed, sc.Err()
}

func render(results []*result, failed []string, machine string, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `make bench` on %s. Machine: %s.\n\n", now.Format("2006-01-02 15:04 UTC"), machine)
	b.WriteString("| benchmark | metric | bpfleet | baseline (same run) | ratio | command |\n|---|---|---|---|---|---|\n")
	isBaseline := map[string]bool{}
	for _, v := range baselines {
		isBaseline[v] = true
	}
	for _, r := range results {
		bench := strings.TrimPrefix(r.name, "Benchmark")
		top := strings.SplitN(r.name, "/", 2)[0]
		cmd := fmt.Sprintf("`go test -run '^$' -bench '^%s$' ./%s`", top, strings.TrimPrefix(r.pkg, "github.com/bpfleet/bpfleet/"))
		for _, unit := range r.order {
			if isBaseline[unit] || derived[unit] || (unit == "ns/op" && len(r.order) > 1) {
				continue
			}
			vals := r.metrics[unit]
			base, ratio := "—", "—"
			against := median(vals)
			if bu, ok := baselines[unit]; ok && len(r.metrics[bu]) > 0 {
				bm := median(r.metrics[bu])
				base = fmt.Sprintf("%s %s", summary(r.metrics[bu]), bu)
				if bm != 0 {
					against = median(vals) / bm
					ratio = fmt.Sprintf("%.2f×", against)
				}
			}
			if g, ok := goals[bench+" "+unit]; ok {
				if ratio == "—" {
					ratio = num(against)
				}
				ratio += " (" + g.check(against) + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", bench, unit, summary(vals), base, ratio, cmd)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "\n**Failed in this run** (their figures above, if any, are from the repeats that passed): %s.\n", strings.Join(failed, ", "))
	}
	return b.String()
}

func metOrNot(ok bool) string {
	if ok {
		return "**met**"
	}
	return "not met"
}

// summary is the median, with min–max when there are repeats.
func summary(v []float64) string {
	if len(v) == 1 {
		return num(v[0])
	}
	return fmt.Sprintf("%s (%s–%s, n=%d)", num(median(v)), num(slices.Min(v)), num(slices.Max(v)), len(v))
}

func num(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func machine() string {
	parts := []string{runtime.GOARCH, fmt.Sprintf("%d cores", runtime.NumCPU())}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		parts = append(parts, "Linux "+strings.TrimSpace(string(out)))
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(l, "model name"); ok {
				parts = append(parts, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":")))
				break
			}
		}
	}
	return strings.Join(parts, ", ")
}

// update replaces the text between the markers in path, or appends the
// markers and the table when the file has none.
func update(path, table string) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	block := beginMarker + "\n" + table + endMarker
	i, j := bytes.Index(data, []byte(beginMarker)), bytes.Index(data, []byte(endMarker))
	if i >= 0 && j > i {
		data = append(append(append([]byte{}, data[:i]...), block...), data[j+len(endMarker):]...)
	} else {
		data = append(data, []byte("\n"+block+"\n")...)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
