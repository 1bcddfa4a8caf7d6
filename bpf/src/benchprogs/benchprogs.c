// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Baseline and traffic-source XDP programs for the bpfleet benchmarks.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* xdp_pass does nothing: the baseline cost of running an XDP program. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/*
 * xdp_tx bounces every frame out of the interface it runs on. Run with
 * BPF_F_TEST_XDP_LIVE_FRAMES on one end of a veth pair, it is an in-kernel
 * traffic source for the peer.
 */
SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

/* xdp_drop drops every frame: counts what reached the sink. */
SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
