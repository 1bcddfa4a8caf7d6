// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup-skb-count: counts the packets and bytes (IP packet length) that the
 * sockets of a cgroup send and receive. Never drops anything.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum direction {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
	DIR_MAX,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* cgroup_traffic[direction] (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DIR_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} cgroup_traffic SEC(".maps");

static __always_inline int count(struct __sk_buff *skb, __u32 dir)
{
	struct counter *c = bpf_map_lookup_elem(&cgroup_traffic, &dir);
	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return 1; /* allow */
}

SEC("cgroup_skb/ingress")
int cgroup_skb_ingress(struct __sk_buff *skb)
{
	return count(skb, DIR_INGRESS);
}

SEC("cgroup_skb/egress")
int cgroup_skb_egress(struct __sk_buff *skb)
{
	return count(skb, DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
