package openfilter

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// cpuTime is this process's user plus system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// openLoad opens and closes path n times with raw syscalls.
func openLoad(tb testing.TB, path string, n int) {
	tb.Helper()
	for range n {
		fd, err := unix.Openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			tb.Fatal(err)
		}
		_ = unix.Close(fd)
	}
}

// consumer filters ring-buffer records in user space, as a tool without
// in-kernel filtering must.
type consumer struct {
	rd            *ringbuf.Reader
	prefix        string
	records, hits atomic.Uint64
	done          chan struct{}
}

func consume(rd *ringbuf.Reader, prefix string) *consumer {
	c := &consumer{rd: rd, prefix: prefix, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		var rec ringbuf.Record
		for {
			if err := rd.ReadInto(&rec); err != nil {
				return
			}
			ev, err := ParseEvent(rec.RawSample)
			if err == nil && strings.HasPrefix(ev.Path, c.prefix) {
				c.hits.Add(1)
			}
			c.records.Add(1)
		}
	}()
	return c
}

// BenchmarkFilteringCPU compares the CPU cost of an openat-heavy load
// (none of whose paths match) with no program, with open-filter filtering
// in the kernel, and with open-filter sending every call to a user-space
// consumer that filters there. Rounds are interleaved; medians reported.
func BenchmarkFilteringCPU(b *testing.B) {
	const (
		rounds = 5
		opens  = 200_000
		prefix = "/bpfleet-bench-no-such-dir/"
	)
	dir := shortTempDir(b)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	measure := func(consts map[string]any, userSpace bool) (perOpen float64, lost uint64) {
		// A 64 MiB ring buffer keeps the user-space consumer from losing
		// records (which would make its cost look lower).
		f := startWithRing(b, 64<<20, consts, map[string]uint32{prefix: 0}, nil)
		var c *consumer
		if userSpace {
			c = consume(f.rd, prefix)
		}
		before := cpuTime(b)
		openLoad(b, path, opens)
		if userSpace {
			// Wait until the consumer has read everything sent so far.
			sent := f.perCPU(b, f.objs.OpenStats, StatSent)
			for c.records.Load() < sent {
				time.Sleep(time.Millisecond)
			}
		}
		cpu := cpuTime(b) - before
		if userSpace {
			_ = f.rd.Close()
			<-c.done
			if c.hits.Load() != 0 {
				b.Fatalf("user space matched %d records", c.hits.Load())
			}
		}
		return float64(cpu.Nanoseconds()) / opens, f.perCPU(b, f.objs.OpenStats, StatLost)
	}
	baseline := func() float64 {
		before := cpuTime(b)
		openLoad(b, path, opens)
		return float64((cpuTime(b) - before).Nanoseconds()) / opens
	}
	for b.Loop() {
		var none, kernel, user []float64
		var lost uint64
		for range rounds {
			none = append(none, baseline())
			k, _ := measure(nil, false)
			kernel = append(kernel, k)
			u, l := measure(map[string]any{SendAllConstant: true}, true)
			user = append(user, u)
			lost += l
		}
		mNone, mKernel, mUser := median(none), median(kernel), median(user)
		b.ReportMetric(mNone, "no-prog-cpu-ns/open")
		b.ReportMetric(mKernel, "kernel-filter-cpu-ns/open")
		b.ReportMetric(mUser, "user-filter-cpu-ns/open")
		b.ReportMetric(mUser/mKernel, "user/kernel")
		// The in-kernel filter's overhead is often within noise of 0, so
		// report overheads in ns rather than as a ratio.
		b.ReportMetric(mKernel-mNone, "kernel-filter-overhead-ns/open")
		b.ReportMetric(mUser-mNone, "user-filter-overhead-ns/open")
		b.ReportMetric(float64(lost), "lost-records")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkKernelSideCost is the kernel side alone: the program's own run
// time per openat (BPF_ENABLE_STATS: run_time_ns / run_cnt), filtering in
// the kernel (no path matches) against sending every call to the ring
// buffer (send_all, drained by a consumer so reservations succeed). Rounds
// are interleaved; medians reported.
func BenchmarkKernelSideCost(b *testing.B) {
	const (
		rounds = 5
		opens  = 200_000
		prefix = "/bpfleet-bench-no-such-dir/"
	)
	dir := shortTempDir(b)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time stats: %v", err)
	}
	defer stats.Close()
	measure := func(consts map[string]any, drain bool) float64 {
		f := startWithRing(b, 64<<20, consts, map[string]uint32{prefix: 0}, nil)
		var c *consumer
		if drain {
			c = consume(f.rd, prefix)
		}
		runtime := func() (time.Duration, uint64) {
			st, err := f.objs.OpenFilter.Stats()
			if err != nil {
				b.Fatal(err)
			}
			return st.Runtime, st.RunCount
		}
		rt0, n0 := runtime()
		openLoad(b, path, opens)
		rt1, n1 := runtime()
		if drain {
			_ = f.rd.Close()
			<-c.done
		}
		if lost := f.perCPU(b, f.objs.OpenStats, StatLost); lost != 0 {
			b.Fatalf("%d records lost: the ring buffer was full", lost)
		}
		return float64((rt1 - rt0).Nanoseconds()) / float64(n1-n0)
	}
	for b.Loop() {
		var kernel, all []float64
		for range rounds {
			kernel = append(kernel, measure(nil, false))
			all = append(all, measure(map[string]any{SendAllConstant: true}, true))
		}
		mKernel, mAll := median(kernel), median(all)
		b.ReportMetric(mKernel, "kernel-filter-prog-ns/call")
		b.ReportMetric(mAll, "send-all-prog-ns/call")
		b.ReportMetric(mAll/mKernel, "send-all/kernel-filter")
	}
}
