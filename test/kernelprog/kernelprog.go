// Package kernelprog holds eBPF test programs for the node agent's kernel
// tests: one per hook kind, a UDP port filter with constants and maps, and a
// program the verifier rejects. The object is built from src/progs.c by go
// generate and committed, so tests need no clang.
package kernelprog

import _ "embed"

//go:generate clang -O2 -g -Wall -Werror -target bpfel -I/usr/include/x86_64-linux-gnu -c src/progs.c -o progs_bpfel.o

// Object is the little-endian ELF object with every test program.
//
//go:embed progs_bpfel.o
var Object []byte

// Program names in Object.
const (
	XDPFilter   = "xdp_filter"      // UDP destination-port filter (maps counters, deny)
	XDPPass     = "xdp_pass"        // counts and passes
	TCCount     = "tc_count"        // tcx, counts
	Tracepoint  = "tp_getppid"      // tracepoint syscalls/sys_enter_getppid
	RawTP       = "rawtp_sys_enter" // raw_tracepoint sys_enter
	TPBTF       = "tpbtf_sys_enter" // tp_btf sys_enter
	Uprobe      = "uprobe_count"    // uprobe, counts
	CgroupSKB   = "cgroup_egress"   // cgroup_skb egress, counts and allows
	Kprobe      = "kprobe_open"     // kprobe do_sys_openat2
	Fentry      = "fentry_open"     // fentry do_sys_openat2
	Fexit       = "fexit_open"      // fexit do_sys_openat2
	XDPRejected = "xdp_bad"         // refused by the verifier
)
