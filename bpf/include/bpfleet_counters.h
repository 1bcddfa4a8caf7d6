/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Counters in an array map of __u64, indexed by an enum of the program:
 * BPFLEET_COUNTERS(name, n) defines the map, bpfleet_count(&name, i) adds
 * one to counter i. Include after vmlinux.h and bpf_helpers.h.
 */
#ifndef BPFLEET_COUNTERS_H
#define BPFLEET_COUNTERS_H

#define BPFLEET_COUNTERS(name, n)                 \
	struct {                                  \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__uint(max_entries, n);           \
		__type(key, __u32);               \
		__type(value, __u64);             \
	} name SEC(".maps")

static __always_inline void bpfleet_count(void *counters, __u32 which)
{
	__u64 *c = bpf_map_lookup_elem(counters, &which);
	if (c)
		__sync_fetch_and_add(c, 1);
}

#endif
