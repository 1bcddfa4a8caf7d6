// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp-pod-filter: drops packets of death at the NIC.
 *
 * Rules live in an array map indexed by priority (index 0 first). The first
 * rule that matches decides the verdict; a frame no rule matches gets
 * default_action. The list ends at the first slot whose flags are 0, so a
 * few rules cost a few comparisons; a rule kept in place but switched off has
 * RULE_DISABLED set. Rules are read on every packet, so a rule written into
 * the map takes effect at once, without reloading the program.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xdp_parse.h"

#define MAX_RULES 64
#define PATTERN_MAX 64

enum rule_flags {
	RULE_ACTIVE = 1,   /* the rule applies */
	RULE_DISABLED = 2, /* the slot is in use but the rule is switched off */
};

/* rule is the value of the rules map. Addresses and ports in network order. */
struct rule {
	__u8 flags;           /* rule_flags; 0 ends the rule list */
	__u8 action;          /* XDP_DROP or XDP_PASS */
	__u8 l4_proto;        /* IPPROTO_TCP or IPPROTO_UDP; 0 matches both */
	__u8 family;          /* 4 or 6; 0 matches both (then no source prefix) */
	__be16 dst_port;      /* 0 matches any port */
	__u8 src_prefix_len;  /* 0 matches any source */
	__u8 pattern_len;     /* 0: no payload match; at most PATTERN_MAX */
	__u16 pattern_offset; /* from the first byte of the L4 payload */
	__u8 _pad[6];
	__be32 src_addr[4];   /* source prefix; IPv4 in src_addr[0] */
	__u8 pattern[PATTERN_MAX];
	__u8 mask[PATTERN_MAX]; /* payload byte i matches if (b ^ pattern[i]) & mask[i] == 0 */
};

/* counter is the per-CPU value of rule_hits. */
struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct counter);
} rule_hits SEC(".maps");

/* default_action is the verdict for frames no rule matches (XDP_PASS). */
volatile const __u32 default_action = XDP_PASS;

static __always_inline int prefix_matches(const struct pkt *p, const struct rule *r)
{
	__u32 bits = r->src_prefix_len;
	if (bits == 0)
		return 1;
	if (r->family != p->family || bits > (p->family == 4 ? 32 : 128))
		return 0;
	for (int w = 0; w < 4; w++) {
		if (bits == 0)
			break;
		__u32 take = bits > 32 ? 32 : bits;
		__u32 mask = take == 32 ? 0xffffffff : ~(0xffffffffu >> take);
		if ((p->saddr[w] ^ r->src_addr[w]) & bpf_htonl(mask))
			return 0;
		bits -= take;
	}
	return 1;
}

/* le_mask is the mask of the first n (0..8) bytes of a little-endian u64. */
static __always_inline __u64 le_mask(__u64 n)
{
	return n >= 8 ? ~0ULL : (1ULL << (n * 8)) - 1;
}

/*
 * deep_match checks the source prefix and the payload pattern of rule r,
 * whose cheap fields (family, protocol, port) already matched. It is a
 * global function so that the verifier checks its loops once, not once per
 * rule slot: that keeps the program's verification to thousands of
 * instructions instead of half a million. The rule comes in as a pointer
 * (the verifier checks the caller passes a whole struct rule), so the call
 * costs no second map lookup. Only rules whose cheap fields matched pay for
 * the call.
 */
__noinline int deep_match(struct xdp_md *ctx, const struct pkt *p, const struct rule *r)
{
	if (!ctx || !p || !r)
		return 0;
	if (!prefix_matches(p, r))
		return 0;
	__u64 len = r->pattern_len;
	if (len == 0)
		return 1;
	if (len > PATTERN_MAX || !p->has_ports)
		return 0;
	__u64 off = (__u64)p->payload_off + r->pattern_offset;
	if (off + len > p->payload_end)
		return 0;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const __u8 *bytes = data + (off & PARSE_FRAME_MAX);
	__u64 words = (len + 7) / 8;
	__u8 buf[PATTERN_MAX];
	if (off > PARSE_FRAME_MAX || (void *)(bytes + words * 8) > data_end) {
		/*
		 * Past the headers' range, within eight bytes of the end of the
		 * linear data, or in a fragment of a multi-buffer frame: copy the
		 * bytes out first.
		 */
		__builtin_memset(buf, 0, sizeof(buf));
		if (bpf_xdp_load_bytes(ctx, off, buf, len))
			return 0;
		bytes = buf;
		data_end = buf + PATTERN_MAX;
	}
	/*
	 * Compare eight bytes at a time in place; bytes past the pattern's
	 * length are masked out (a hand-written mask may not be zero there).
	 */
	const __u64 *pat = (const __u64 *)r->pattern;
	const __u64 *msk = (const __u64 *)r->mask;
	for (__u64 i = 0; i < PATTERN_MAX / 8; i++) {
		if (i >= words)
			break;
		if ((void *)(bytes + i * 8 + 8) > data_end) /* for the verifier; checked above */
			return 0;
		__u64 got = *(const __u64 *)(bytes + i * 8);
		if ((got ^ pat[i]) & msk[i] & le_mask(len - i * 8))
			return 0;
	}
	return 1;
}

SEC("xdp")
int xdp_pod_filter(struct xdp_md *ctx)
{
	struct pkt p = {};
	if (parse_pkt(ctx, &p) != PARSE_OK)
		return default_action;
	if (p.l4_proto != IPPROTO_TCP && p.l4_proto != IPPROTO_UDP)
		return default_action;
	/* A frame without ports (a later fragment) matches only port-less rules. */
	__be16 dport = p.has_ports ? p.dport : 0;

	for (__u32 i = 0; i < MAX_RULES; i++) {
		__u32 key = i;
		struct rule *r = bpf_map_lookup_elem(&rules, &key);
		if (!r)
			break;
		/*
		 * The cheap fields are the rule's first eight bytes: one load.
		 * Little-endian byte order: flags, action, l4_proto, family,
		 * dst_port (2), src_prefix_len, pattern_len.
		 */
		__u64 h = *(__u64 *)r;
		__u8 flags = h;
		if (flags == 0)
			break;
		if ((flags & (RULE_ACTIVE | RULE_DISABLED)) != RULE_ACTIVE)
			continue;
		__u8 proto = h >> 16, family = h >> 24;
		__be16 port = h >> 32;
		if (family && family != p.family)
			continue;
		if (proto && proto != p.l4_proto)
			continue;
		if (port && port != dport)
			continue;
		if ((h >> 48) && !deep_match(ctx, &p, r))
			continue;
		struct counter *c = bpf_map_lookup_elem(&rule_hits, &key);
		if (c) {
			c->packets++;
			c->bytes += ctx->data_end - ctx->data;
		}
		return r->action == XDP_DROP ? XDP_DROP : XDP_PASS;
	}
	return default_action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
