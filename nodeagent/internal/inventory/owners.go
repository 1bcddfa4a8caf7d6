package inventory

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxOwners bounds the processes named per program.
const maxOwners = 8

// Owners finds, for each program id in want, the processes holding a file
// descriptor to it or to a link of it (anon_inode:bpf-prog, bpf_link), as
// "comm(pid)" sorted by pid, at most maxOwners each. It reads procfs under
// proc ("/proc" on a node). Processes that exit while it reads are skipped;
// it never fails, as what it finds is a hint.
func Owners(proc string, want map[uint32]bool) map[uint32][]string {
	out := map[uint32][]string{}
	if len(want) == 0 {
		return out
	}
	pids, _ := filepath.Glob(filepath.Join(proc, "[0-9]*"))
	type owner struct {
		pid  int
		name string
	}
	found := map[uint32][]owner{}
	for _, dir := range pids {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		held := map[uint32]bool{}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil || (target != "anon_inode:bpf-prog" && target != "anon_inode:bpf_link") {
				continue
			}
			if id, ok := fdinfoProgID(filepath.Join(dir, "fdinfo", fd.Name())); ok && want[id] {
				held[id] = true
			}
		}
		if len(held) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		name := fmt.Sprintf("%s(%d)", strings.TrimSpace(string(comm)), pid)
		for id := range held {
			found[id] = append(found[id], owner{pid, name})
		}
	}
	for id, owners := range found {
		slices.SortFunc(owners, func(a, b owner) int { return cmp.Compare(a.pid, b.pid) })
		if len(owners) > maxOwners {
			owners = owners[:maxOwners]
		}
		for _, o := range owners {
			out[id] = append(out[id], o.name)
		}
	}
	return out
}

// fdinfoProgID reads the prog_id line of a bpf-prog or bpf_link fdinfo file.
func fdinfoProgID(path string) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "prog_id:"); ok {
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return uint32(id), err == nil
		}
	}
	return 0, false
}
