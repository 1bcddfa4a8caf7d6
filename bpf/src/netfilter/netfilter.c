// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nf-count: a netfilter program for one hook of a network namespace. It
 * counts the packets that pass the hook and, with the drop constant set,
 * drops them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet_counters.h"

#define NF_DROP 0
#define NF_ACCEPT 1

/* Drop every packet at the hook when set. */
volatile const __u8 drop = 0;

enum counter {
	PACKETS = 0, /* every packet the program saw */
	DROPPED = 1, /* packets it dropped */
	COUNTER_MAX,
};

BPFLEET_COUNTERS(packet_counts, COUNTER_MAX);

SEC("netfilter")
int nf_count(struct bpf_nf_ctx *ctx)
{
	bpfleet_count(&packet_counts, PACKETS);
	if (drop) {
		bpfleet_count(&packet_counts, DROPPED);
		return NF_DROP;
	}
	return NF_ACCEPT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
