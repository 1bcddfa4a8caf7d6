// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * open-filter: filters openat(2) calls in the kernel and sends only the
 * matching ones to user space.
 *
 * A call matches when its path starts with one of the prefixes in the
 * path_prefixes LPM trie (longest prefix wins; its id indexes prefix_hits),
 * and, when match_comm is set, the caller's comm is in the comms map, and,
 * when cgroup_id is not 0, the caller runs in that cgroup. Setting send_all
 * skips the in-kernel filter and sends every call, for comparing in-kernel
 * with user-space filtering.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet_pods.h"

#define TASK_COMM_LEN 16
#define PATH_MAX_LEN 256
#define PREFIX_MAX_LEN 64 /* prefixes are at most PREFIX_MAX_LEN-1 bytes */
#define MAX_PREFIXES 64

/* prefix_key is an LPM trie key: prefix length in bits, then the bytes. */
struct prefix_key {
	__u32 prefixlen;
	__u8 path[PREFIX_MAX_LEN];
};

/* open_event is one ring-buffer record. */
struct open_event {
	__u64 cgroup_id;
	__u32 pid;
	__u32 prefix_id; /* id of the matching prefix; ~0 when send_all skipped matching */
	__s32 flags;     /* openat flags */
	__u32 _pad;
	char comm[TASK_COMM_LEN];
	char path[PATH_MAX_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_key);
	__type(value, __u32);
} path_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, char[TASK_COMM_LEN]);
	__type(value, __u8);
} comms SEC(".maps");

/* prefix_hits counts matches per prefix id (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PREFIXES);
	__type(key, __u32);
	__type(value, __u64);
} prefix_hits SEC(".maps");

enum open_stat {
	STAT_SEEN = 0,    /* openat calls seen */
	STAT_SENT = 1,    /* records sent to user space */
	STAT_LOST = 2,    /* records lost: ring buffer full */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} open_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} open_events SEC(".maps");

/* Puts struct open_event in the object's BTF, where bundle.yaml's outputs name it
 * as the record type of open_events: readers decode records from it. */
const struct open_event *unused_open_event __attribute__((unused));

/* Per-CPU scratch for the LPM lookup key (too big for comfort on the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct prefix_key);
} scratch SEC(".maps");

/* send_all sends every openat to user space without filtering. */
volatile const bool send_all = false;
/* match_comm also requires the caller's comm to be in the comms map. */
volatile const bool match_comm = false;
/* cgroup_id, when not 0, also requires the caller to run in that cgroup. */
volatile const __u64 cgroup_id = 0;

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&open_stats, &idx);
	if (v)
		(*v)++;
}

static __always_inline int send(struct trace_event_raw_sys_enter *ctx, __u32 prefix_id)
{
	struct open_event *e = bpf_ringbuf_reserve(&open_events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_LOST);
		return 0;
	}
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->prefix_id = prefix_id;
	e->flags = (__s32)ctx->args[2];
	e->_pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->path, sizeof(e->path), (const char *)ctx->args[1]);
	bpf_ringbuf_submit(e, 0);
	stat_inc(STAT_SENT);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int open_filter(struct trace_event_raw_sys_enter *ctx)
{
	if (!bpfleet_pod_selected())
		return 0;
	stat_inc(STAT_SEEN);
	if (send_all)
		return send(ctx, ~0u);

	if (cgroup_id && bpf_get_current_cgroup_id() != cgroup_id)
		return 0;
	if (match_comm) {
		char comm[TASK_COMM_LEN] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		if (!bpf_map_lookup_elem(&comms, comm))
			return 0;
	}

	__u32 zero = 0;
	struct prefix_key *key = bpf_map_lookup_elem(&scratch, &zero);
	if (!key)
		return 0;
	__builtin_memset(key->path, 0, sizeof(key->path));
	long n = bpf_probe_read_user_str(key->path, sizeof(key->path), (const char *)ctx->args[1]);
	if (n <= 1) /* error or empty path */
		return 0;
	key->prefixlen = (n - 1) * 8; /* the path's bytes, without the NUL */
	__u32 *id = bpf_map_lookup_elem(&path_prefixes, key);
	if (!id)
		return 0;
	__u32 pid = *id;
	__u64 *hits = bpf_map_lookup_elem(&prefix_hits, &pid);
	if (hits)
		(*hits)++;
	return send(ctx, pid);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
