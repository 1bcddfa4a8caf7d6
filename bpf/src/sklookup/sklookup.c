// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk-lookup-steer: an sk_lookup program for a network namespace. It counts
 * every socket lookup, and steers new connections and datagrams for one
 * local port (the steer_port constant) to the socket in steer_target, as
 * if that socket listened there too. 0 steers nothing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet_counters.h"

/* Local port to steer, host byte order; 0 steers nothing. */
volatile const __u16 steer_port = 0;

/* steer_target[0] is the socket steered to. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} steer_target SEC(".maps");

enum counter {
	LOOKUPS = 0, /* every lookup the program saw */
	STEERED = 1, /* lookups it steered to steer_target */
	COUNTER_MAX,
};

BPFLEET_COUNTERS(lookup_counts, COUNTER_MAX);

SEC("sk_lookup")
int sk_lookup_steer(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0;
	struct bpf_sock *sk;
	long err;

	bpfleet_count(&lookup_counts, LOOKUPS);
	if (steer_port == 0 || ctx->local_port != steer_port)
		return SK_PASS;
	sk = bpf_map_lookup_elem(&steer_target, &zero);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err == 0)
		bpfleet_count(&lookup_counts, STEERED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
