// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * exec-trace: one ring-buffer event per successful exec, from the
 * sched/sched_process_exec tracepoint.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfleet_pods.h"

#define TASK_COMM_LEN 16
#define FILENAME_MAX_LEN 256

/* exec_event is one ring-buffer record. */
struct exec_event {
	__u64 cgroup_id; /* cgroup v2 id (inode number of the cgroup directory) */
	__u32 pid;       /* thread group id of the new image */
	__u32 ppid;      /* thread group id of the real parent */
	__u32 uid;
	__u32 gid;
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_MAX_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} exec_events SEC(".maps");

/* Puts struct exec_event in the object's BTF, where bundle.yaml's outputs name it
 * as the record type of exec_events: readers decode records from it. */
const struct exec_event *unused_exec_event __attribute__((unused));

/* exec_stats: [0] events sent, [1] events lost because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} exec_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&exec_stats, &idx);
	if (v)
		(*v)++;
}

SEC("tracepoint/sched/sched_process_exec")
int exec_trace(struct trace_event_raw_sched_process_exec *ctx)
{
	if (!bpfleet_pod_selected())
		return 0;
	struct exec_event *e = bpf_ringbuf_reserve(&exec_events, sizeof(*e), 0);
	if (!e) {
		count(1);
		return 0;
	}
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	__u64 uid_gid = bpf_get_current_uid_gid();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__u32 loc = BPF_CORE_READ(ctx, __data_loc_filename) & 0xffff;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + loc);
	bpf_ringbuf_submit(e, 0);
	count(0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
