// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bpfleet's pod filter for tracing programs. A BpfProgram (or BpfPodProgram)
 * whose tracepoint or rawTracepoint block selects pods makes the agent set
 * bpfleet_filter_pods to 1 before load and keep bpfleet_pods holding the
 * cgroup v2 ids of the selected pods' containers on the node. A program
 * that calls bpfleet_pod_selected() first then sees only those pods'
 * events, filtered in the kernel. Without pods, every event passes.
 *
 * The agent refuses pod-filtered blocks for bundles without these names.
 * The names are the agent's: BpfPrograms may not write them.
 */
#ifndef BPFLEET_PODS_H
#define BPFLEET_PODS_H

#ifndef BPFLEET_MAX_POD_CGROUPS
#define BPFLEET_MAX_POD_CGROUPS 8192
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BPFLEET_MAX_POD_CGROUPS);
	__type(key, __u64);  /* cgroup v2 id of a selected pod's container */
	__type(value, __u8); /* 1 */
} bpfleet_pods SEC(".maps");

volatile const __u8 bpfleet_filter_pods = 0;

/* bpfleet_pod_selected tells whether the current task runs in a selected
 * pod, or whether no pod filter is set. */
static __always_inline bool bpfleet_pod_selected(void)
{
	if (!bpfleet_filter_pods)
		return true;
	__u64 id = bpf_get_current_cgroup_id();
	return bpf_map_lookup_elem(&bpfleet_pods, &id) != NULL;
}

#endif /* BPFLEET_PODS_H */
