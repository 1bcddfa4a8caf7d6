// Package procstat reads a process's CPU time and memory from /proc, for
// tests and benchmarks that measure a running agent, operator or control
// plane.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sample is one process's CPU time and memory.
type Sample struct {
	// CPU is user plus system time.
	CPU time.Duration
	// RSSKiB is the resident set (VmRSS), HWMKiB its peak (VmHWM).
	RSSKiB, HWMKiB int64
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// Read samples /proc/<pid>/stat and status.
func Read(pid int) (Sample, error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Sample{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return Sample{}, fmt.Errorf("parse stat of %d: no command", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return Sample{}, fmt.Errorf("parse stat of %d: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): utime is field 14, stime 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return Sample{}, fmt.Errorf("parse cpu times of %d: %v %v", pid, err1, err2)
	}
	s := Sample{CPU: time.Duration(utime+stime) * time.Second / clockTicks}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return Sample{}, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.RSSKiB = kib(rest)
		}
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			s.HWMKiB = kib(rest)
		}
	}
	return s, nil
}

func kib(field string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(field), "kB")), 10, 64)
	return n
}

// SelfCPU is this process's user plus system time by getrusage, to the
// microsecond (Read counts in clock ticks).
func SelfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
