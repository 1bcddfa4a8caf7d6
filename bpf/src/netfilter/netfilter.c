// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nf-count: a netfilter program for one hook of a network namespace. It
 * counts the packets that pass the hook and, with the drop constant set,
 * drops them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NF_DROP 0
#define NF_ACCEPT 1

/* Drop every packet at the hook when set. */
volatile const __u8 drop = 0;

enum counter {
	PACKETS = 0, /* every packet the program saw */
	DROPPED = 1, /* packets it dropped */
	COUNTER_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} packet_counts SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&packet_counts, &which);
	if (c)
		__sync_fetch_and_add(c, 1);
}

SEC("netfilter")
int nf_count(struct bpf_nf_ctx *ctx)
{
	count(PACKETS);
	if (drop) {
		count(DROPPED);
		return NF_DROP;
	}
	return NF_ACCEPT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
