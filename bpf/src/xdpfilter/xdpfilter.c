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
 *
 * The index. Scanning 64 slots costs ~250 ns per packet; the rule set's
 * writer may add an index that names, per protocol and destination port,
 * the slots that can match (rule_index), so a packet evaluates only those.
 * The index is derived data: it is trusted only while it describes the
 * rules in the map, which a seqlock of two words proves (rule_index_seq).
 * The writer puts, in this order:
 *
 *   1. rule_index_seq[SEQ_BEGIN] = {gen, n}: an update starts;
 *   2. the rules in slots 0..n-1, and an empty slot n (the list's end);
 *   3. rule_index entries {slots, gen} for each key a rule of the set uses;
 *   4. rule_index_seq[SEQ_COMMIT] = {gen, n}: the update is complete.
 *
 * gen is the rule set's generation (non-zero, a hash of the set). A packet
 * uses the index only when both seq words carry the same gen, reads only
 * index entries of that gen (any other entry is stale: from an earlier set,
 * or never written, and names no slot), and checks the begin word again
 * before its verdict: an update that started meanwhile sends it to the
 * scan. Between steps 1 and 4 every packet scans, with today's semantics of
 * in-place writes. A map without seq words (rules written by hand) is
 * always scanned. A rule found in slot n, or an empty slot the index names,
 * means someone wrote rules without the index: the packet scans.
 *
 * Ordering: the packet reads the commit word first and the begin word last.
 * The writer's map updates are separate syscalls, so on a CPU that keeps
 * stores in order (x86) a packet that sees a commit sees every entry
 * written before it whole, and a packet that raced an entry's write sees
 * the begin word changed. BPF has no load-acquire here; weakly ordered CPUs
 * (arm64) are not covered by this argument.
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

#define PORT_KEYS 65536
#define INDEX_TCP 0                    /* + port: TCP rules for that port */
#define INDEX_UDP PORT_KEYS            /* + port: UDP rules for that port */
#define INDEX_ANY_PORT (2 * PORT_KEYS) /* rules without a port (any protocol) */
#define INDEX_KEYS (INDEX_ANY_PORT + 1)

/* index_entry is a value of rule_index: the slots a key's packets can match. */
struct index_entry {
	__u64 slots; /* bit i: slot i */
	__u64 gen;   /* the generation this entry belongs to */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INDEX_KEYS);
	__type(key, __u32);
	__type(value, struct index_entry);
} rule_index SEC(".maps");

enum { SEQ_BEGIN = 0, SEQ_COMMIT = 1 };

/* index_seq is a value of rule_index_seq. */
struct index_seq {
	__u64 gen;   /* 0: no index */
	__u32 rules; /* n: slots 0..n-1 hold the set, slot n is empty */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct index_seq);
} rule_index_seq SEC(".maps");

#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))

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

/*
 * The cheap fields are a rule's first eight bytes, read with one load.
 * Little-endian byte order: flags, action, l4_proto, family, dst_port (2,
 * network order as in the frame), src_prefix_len, pattern_len.
 */
#define KEY_PROTO 0x0000000000ff0000ULL
#define KEY_FAMILY 0x00000000ff000000ULL
#define KEY_PORT 0x0000ffff00000000ULL

/*
 * pkt_key is the packet's protocol, family and destination port placed
 * where a rule's first eight bytes hold them, so that a field compares
 * with an xor and a mask.
 */
static __always_inline __u64 pkt_key(const struct pkt *p, __be16 dport)
{
	return ((__u64)p->l4_proto << 16) | ((__u64)p->family << 24) | ((__u64)dport << 32);
}

/*
 * rule_matches tells whether the rule in a slot matches the packet, whose
 * cheap fields are pkey (pkt_key); an empty slot returns -1. A rule's field
 * of 0 matches anything.
 */
static __always_inline int rule_matches(struct xdp_md *ctx, const struct pkt *p, __u64 pkey,
					const struct rule *r)
{
	__u64 h = *(__u64 *)r;
	__u8 flags = h;
	if (flags == 0)
		return -1;
	if ((flags & (RULE_ACTIVE | RULE_DISABLED)) != RULE_ACTIVE)
		return 0;
	__u64 diff = h ^ pkey;
	if ((diff & KEY_FAMILY) && (h & KEY_FAMILY))
		return 0;
	if ((diff & KEY_PROTO) && (h & KEY_PROTO))
		return 0;
	if ((diff & KEY_PORT) && (h & KEY_PORT))
		return 0;
	if ((h >> 48) && !deep_match(ctx, p, r))
		return 0;
	return 1;
}

static __always_inline int verdict(struct xdp_md *ctx, const struct rule *r, __u32 slot)
{
	struct counter *c = bpf_map_lookup_elem(&rule_hits, &slot);
	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
	return r->action == XDP_DROP ? XDP_DROP : XDP_PASS;
}

/*
 * lowest_bit is the index of the lowest set bit of x (x != 0): the number
 * of bits below it, counted without branches (BPF has no ctz instruction;
 * a binary search compiled to some fifty instructions).
 */
static __always_inline __u32 lowest_bit(__u64 x)
{
	__u64 v = (x & -x) - 1;
	v = v - ((v >> 1) & 0x5555555555555555ULL);
	v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (v * 0x0101010101010101ULL) >> 56;
}

enum { INDEX_UNUSABLE = -1 };

/*
 * indexed evaluates the slots the index names for the packet, in slot
 * order. It returns the verdict, default_action when none matches, or
 * INDEX_UNUSABLE when the index cannot be trusted for this packet.
 */
static __always_inline int indexed(struct xdp_md *ctx, const struct pkt *p, __be16 dport,
				   __u64 pkey)
{
	/* The commit word first: without an index it is all the scan pays for. */
	__u32 k = SEQ_COMMIT;
	struct index_seq *commit = bpf_map_lookup_elem(&rule_index_seq, &k);
	if (!commit)
		return INDEX_UNUSABLE;
	__u64 gen = READ_ONCE_U64(commit->gen);
	if (gen == 0)
		return INDEX_UNUSABLE;
	k = SEQ_BEGIN;
	struct index_seq *begin = bpf_map_lookup_elem(&rule_index_seq, &k);
	if (!begin || READ_ONCE_U64(begin->gen) != gen)
		return INDEX_UNUSABLE;
	__u32 n = commit->rules;
	if (n > MAX_RULES)
		return INDEX_UNUSABLE;
	if (n < MAX_RULES) {
		/* The list's end must still be empty: no rule added beside the index. */
		k = n;
		struct rule *end = bpf_map_lookup_elem(&rules, &k);
		if (!end || end->flags != 0)
			return INDEX_UNUSABLE;
	}

	__u64 slots = 0;
	struct index_entry *e;
	if (dport) {
		k = (p->l4_proto == IPPROTO_UDP ? INDEX_UDP : INDEX_TCP) + bpf_ntohs(dport);
		e = bpf_map_lookup_elem(&rule_index, &k);
		if (e && e->gen == gen)
			slots |= e->slots;
	}
	k = INDEX_ANY_PORT;
	e = bpf_map_lookup_elem(&rule_index, &k);
	if (e && e->gen == gen)
		slots |= e->slots;
	if (n < MAX_RULES)
		slots &= (1ULL << n) - 1;

	struct rule *hit = NULL;
	__u32 slot = 0;
	for (int i = 0; i < MAX_RULES && slots; i++) {
		__u32 key = lowest_bit(slots);
		slots &= slots - 1;
		struct rule *r = bpf_map_lookup_elem(&rules, &key);
		if (!r)
			return INDEX_UNUSABLE;
		int m = rule_matches(ctx, p, pkey, r);
		if (m < 0)
			return INDEX_UNUSABLE; /* the index names an empty slot */
		if (m) {
			hit = r;
			slot = key;
			break;
		}
	}
	/* An update that started meanwhile may have changed what we read. */
	if (READ_ONCE_U64(begin->gen) != gen)
		return INDEX_UNUSABLE;
	if (!hit)
		return default_action;
	return verdict(ctx, hit, slot);
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

	__u64 pkey = pkt_key(&p, dport);

	int v = indexed(ctx, &p, dport, pkey);
	if (v != INDEX_UNUSABLE)
		return v;

	for (__u32 i = 0; i < MAX_RULES; i++) {
		__u32 key = i;
		struct rule *r = bpf_map_lookup_elem(&rules, &key);
		if (!r)
			break;
		int m = rule_matches(ctx, &p, pkey, r);
		if (m < 0)
			break;
		if (m)
			return verdict(ctx, r, key);
	}
	return default_action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
