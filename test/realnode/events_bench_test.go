package realnode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkRealNodeEvents: open-filter events of a host process's openat(2)
// calls, read by the agent and sent to one stream client (the agent's
// /events over TLS, as kubectl bpf events reads it through its
// port-forward). Reported: latency from just before the openat to the line
// received by the client, p50 and p99, at 10k events/s; and the agent
// process's CPU, as % of one core, idle and at 1k and 10k events/s with
// that client reading (the stdout sink included; containerd's handling of
// the agent's log is not).
func BenchmarkRealNodeEvents(b *testing.B) {
	e := requireBenchSuite(b)
	const name = "bench-open-events"
	prefix := e.openFilterEvents(b, name)
	viewer := e.serviceAccountKubeconfig(b, "bench-open-viewer", true)
	agent, err := e.agentPod(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	pid := e.containerPID(b, agent, "agent")
	resp := e.openStream(b, name, viewer.token)

	const window = 10 * time.Second
	began := time.Now()
	// received[tag][seq] is when the client got the line of prefix+tag+seq,
	// since began.
	var mu sync.Mutex
	received := map[string]map[int64]time.Duration{}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			at := time.Since(began)
			var ev struct{ Record struct{ Path string } }
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			tag, seq, ok := strings.Cut(strings.TrimPrefix(ev.Record.Path, prefix), "-")
			n, err := strconv.ParseInt(seq, 10, 64)
			if !ok || err != nil {
				continue
			}
			mu.Lock()
			if received[tag] == nil {
				received[tag] = map[int64]time.Duration{}
			}
			received[tag][n] = at
			mu.Unlock()
		}
	}()

	cpu := map[int]float64{}
	var p50, p99 time.Duration
	var got, sent int
	for b.Loop() {
		for _, rate := range []int{0, 1000, 10000} {
			tag := "r" + strconv.Itoa(rate)
			sentAt := make([]time.Duration, 0, rate*int(window/time.Second)+rate)
			before := cpuTicks(b, pid)
			start := time.Now()
			paced(rate, window, func(n int64) {
				sentAt = append(sentAt, time.Since(began))
				touch(prefix + tag + "-" + strconv.FormatInt(n, 10))
			})
			elapsed := time.Since(start)
			time.Sleep(time.Second) // the last lines arrive
			cpu[rate] = float64(cpuTicks(b, pid)-before) / ticksPerSecond / elapsed.Seconds() * 100
			if rate != 10000 {
				continue
			}
			mu.Lock()
			var lat []time.Duration
			for n, at := range received[tag] {
				lat = append(lat, at-sentAt[n])
			}
			mu.Unlock()
			slices.Sort(lat)
			got, sent = len(lat), len(sentAt)
			if got < sent*9/10 {
				b.Fatalf("the client got %d of %d lines at %d events/s", got, sent, rate)
			}
			p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
	}
	b.ReportMetric(float64(p50.Microseconds())/1000, "ms-p50-at-10k/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99-at-10k/s")
	b.ReportMetric(float64(got)/float64(sent)*100, "%-lines-received-at-10k/s")
	b.ReportMetric(cpu[0], "agent-cpu-%-idle")
	b.ReportMetric(cpu[1000], "agent-cpu-%-at-1k/s")
	b.ReportMetric(cpu[10000], "agent-cpu-%-at-10k/s")
}

// paced calls fn(0), fn(1), … at rate per second for d.
func paced(rate int, d time.Duration, fn func(n int64)) {
	start := time.Now()
	var n int64
	for {
		elapsed := time.Since(start)
		if elapsed >= d {
			return
		}
		due := int64(elapsed.Seconds() * float64(rate))
		if n >= due {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for ; n < due; n++ {
			fn(n)
		}
	}
}

// ticksPerSecond is USER_HZ, the unit of /proc/<pid>/stat's CPU times.
const ticksPerSecond = 100

// cpuTicks is the user plus system time of process pid in USER_HZ ticks.
func cpuTicks(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("parse /proc/%d/stat: %q", pid, b)
	}
	return utime + stime
}
