package xdpfilter

import (
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// objectsEnv names filter objects to compare with BenchmarkObjectsVsCeiling:
// "name=path.o,...". A name containing "64" gets the 64-rule set, others
// the 3-rule set, both written as RuleSet.Entries writes them.
const objectsEnv = "BPFLEET_XDPFILTER_OBJECTS"

// loadObjectFile loads a filter object from a file (an earlier build, for
// a before/after comparison) and writes the rules as RuleSet.Entries does.
func loadObjectFile(tb testing.TB, path string, rules []Rule) *xdpfilterObjects {
	tb.Helper()
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := spec.Variables[DefaultActionConstant].Set(uint32(xdpPass)); err != nil {
		tb.Fatal(err)
	}
	var objs xdpfilterObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		tb.Fatalf("load %s: %v", path, err)
	}
	tb.Cleanup(func() { _ = objs.Close() })
	entries, err := RuleSet(rules).Entries()
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		writeEntry(tb, &objs, e)
	}
	return &objs
}

// BenchmarkObjectsVsCeiling compares builds of the filter (objectsEnv, for
// example this commit's object and an earlier one from git show) against
// the XDP_DROP ceiling in the same interleaved rounds of live frames, as
// BenchmarkDropRateVsCeiling does for the embedded object: the median
// per-round share of the ceiling's CPU rate of each (/ceiling-cpu). It
// skips without objectsEnv.
func BenchmarkObjectsVsCeiling(b *testing.B) {
	list := os.Getenv(objectsEnv)
	if list == "" {
		// Opt-in: nothing to compare without objects (not a skip: the
		// CI=true gate of test/support/privileged is for missing privileges).
		b.Logf("set %s=name=path.o,... to compare filter objects", objectsEnv)
		return
	}
	drop := dropAllProgram(b)
	type object struct {
		name string
		objs *xdpfilterObjects
		last uint32
	}
	var objects []object
	for _, kv := range strings.Split(list, ",") {
		name, path, ok := strings.Cut(kv, "=")
		if !ok {
			b.Fatalf("%s: %q is not name=path", objectsEnv, kv)
		}
		n := 3
		if strings.Contains(name, "64") {
			n = MaxRules
		}
		objects = append(objects, object{name, loadObjectFile(b, path, deathLastRules(n, false)), uint32(n - 1)})
	}
	d := newDropBench(b)
	const (
		rounds = 11
		frames = 300_000
	)
	for b.Loop() {
		var ceiling []rate
		rates := make([][]rate, len(objects))
		for r := range rounds {
			for i := range len(objects) + 1 {
				j := (i + r) % (len(objects) + 1)
				if j == len(objects) {
					ceiling = append(ceiling, d.ceilingRate(b, drop, frames))
					continue
				}
				rates[j] = append(rates[j], d.xdpRateAt(b, objects[j].objs, objects[j].last, frames))
			}
		}
		b.ReportMetric(median(cpuRates(ceiling))/1e6, "drop-all-cpu-Mpps")
		for i, o := range objects {
			b.ReportMetric(median(cpuRates(rates[i]))/1e6, o.name+"-cpu-Mpps")
			b.ReportMetric(median(shares(cpuRates(rates[i]), cpuRates(ceiling))), o.name+"/ceiling-cpu")
		}
	}
}
