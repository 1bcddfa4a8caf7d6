// Test programs for the node agent's kernel tests: one per hook kind bpfleet
// attaches, a filter with constants and maps, and one the verifier rejects.
// Build: go generate ./test/support/kernelprog
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#ifdef WIDE
// A release whose counters grew a second word: the same map name with
// another value size, which a preserved map cannot carry over.
struct counter {
	__u64 n;
	__u64 spare;
};
#define COUNTER struct counter
#else
#define COUNTER __u64
#endif

// counters[0] counts every run of any program below, counters[1] drops.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, COUNTER);
} counters SEC(".maps");

// deny holds UDP destination ports (host byte order) to drop.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} deny SEC(".maps");

// Constants rewritten by spec.constants.
volatile const __u32 drop_action = XDP_DROP;
volatile const _Bool enabled = 1;
volatile const __u8 marker[4] = {0, 0, 0, 0};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

#define ETH_HLEN 14
#define IPPROTO_UDP 17

// xdp_filter drops UDP/IPv4 packets whose destination port is in deny.
SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	count(0);
	if (!enabled)
		return XDP_PASS;
	if (data + ETH_HLEN + 20 + 8 > end)
		return XDP_PASS;
	__u8 *p = data;
	if (p[12] != 0x08 || p[13] != 0x00)
		return XDP_PASS;
	__u8 ihl = (p[ETH_HLEN] & 0x0f) * 4;
	if (ihl != 20 || p[ETH_HLEN + 9] != IPPROTO_UDP)
		return XDP_PASS;
	__u16 port = ((__u16)p[ETH_HLEN + 20 + 2] << 8) | p[ETH_HLEN + 20 + 3];
#ifdef V2
	// Version 2 counts the UDP packets it inspects too (a different tag).
	count(0);
#endif
#ifdef BROKEN
	// A broken release: reads past the bounds checked above.
	if (p[ETH_HLEN + 200])
		return XDP_PASS;
#endif
	if (bpf_map_lookup_elem(&deny, &port)) {
		count(1);
		return drop_action;
	}
	return XDP_PASS;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	count(0);
	return XDP_PASS;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	count(0);
	return -1; // TCX_NEXT
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int tp_getppid(void *ctx)
{
	count(0);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int rawtp_sys_enter(void *ctx)
{
	count(0);
	return 0;
}

SEC("tp_btf/sys_enter")
int tpbtf_sys_enter(void *ctx)
{
	count(0);
	return 0;
}

SEC("uprobe")
int uprobe_count(void *ctx)
{
	count(0);
	return 0;
}

// nf_accept counts each packet of its netfilter hook and accepts it.
SEC("netfilter")
int nf_accept(void *ctx)
{
	count(0);
	return 1; // NF_ACCEPT
}

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb)
{
	count(0);
	return 1;
}

SEC("kprobe/do_sys_openat2")
int kprobe_open(void *ctx)
{
	count(0);
	return 0;
}

SEC("fentry/do_sys_openat2")
int fentry_open(void *ctx)
{
	count(0);
	return 0;
}

SEC("fexit/do_sys_openat2")
int fexit_open(void *ctx)
{
	count(0);
	return 0;
}

// xdp_bad reads past the packet without a bounds check: the verifier refuses it.
SEC("xdp")
int xdp_bad(struct xdp_md *ctx)
{
	__u8 *p = (void *)(long)ctx->data;
	return p[64] ? XDP_PASS : XDP_DROP;
}
