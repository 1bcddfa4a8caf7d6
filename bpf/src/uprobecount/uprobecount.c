// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * uprobe-count: counts calls of a user-space function (a uprobe on its entry).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* calls[0] counts calls (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

/* target_tgid, when not 0, counts only calls made by that process. */
volatile const __u32 target_tgid = 0;

SEC("uprobe")
int uprobe_count(void *ctx)
{
	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&calls, &zero);
	if (n)
		(*n)++;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
