// Package orphans finds the processes a run of bpfleet-local (or of the test
// cluster) started and did not stop because it was killed: Record notes each
// child with its start time in a file under the run's state dir, and the next
// run's Reap kills those that still run, so their ports and files are free
// again. The start time guards against a recycled pid.
package orphans

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Record appends pids, each with its start time, to file.
func Record(file string, pids ...int) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open pid record: %w", err)
	}
	defer f.Close()
	for _, pid := range pids {
		start, err := StartTime(pid)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(f, "%d %d\n", pid, start); err != nil {
			return fmt.Errorf("write pid record: %w", err)
		}
	}
	return nil
}

// Reap kills with SIGKILL every process file records that still runs with
// the recorded start time, waits up to 10 s for each to go, and removes
// file. It returns how many it killed; a missing file is no error.
func Reap(file string) (int, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open pid record: %w", err)
	}
	var killed []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var pid int
		var start uint64
		if _, err := fmt.Sscanf(sc.Text(), "%d %d", &pid, &start); err != nil || pid <= 1 {
			continue
		}
		if now, err := StartTime(pid); err != nil || now != start {
			continue // gone, or the pid belongs to another process now
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed = append(killed, pid)
		}
	}
	f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range killed {
		for Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := os.Remove(file); err != nil {
		return len(killed), fmt.Errorf("remove pid record: %w", err)
	}
	return len(killed), nil
}

// Children returns the pids whose parent is ppid.
func Children(ppid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields, err := statFields(pid)
		if err != nil || len(fields) < 2 {
			continue
		}
		if p, _ := strconv.Atoi(fields[1]); p == ppid {
			out = append(out, pid)
		}
	}
	return out, nil
}

// StartTime is the process's start time in clock ticks after boot
// (/proc/PID/stat field 22).
func StartTime(pid int) (uint64, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// Alive tells whether pid exists and is not a zombie.
func Alive(pid int) bool {
	fields, err := statFields(pid)
	return err == nil && len(fields) > 0 && fields[0] != "Z"
}

// statFields are the fields of /proc/PID/stat after the command name: state
// is [0], ppid [1], start time [19].
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	return strings.Fields(s[i+1:]), nil
}
