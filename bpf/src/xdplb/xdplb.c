// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp-lb: an L4 load-balancer datapath (IPv4 and IPv6, TCP and UDP) in XDP.
 *
 * Forward direction: a frame to a VIP (address, port, protocol) picks a
 * backend from the VIP's Maglev ring (computed in user space) by a hash of
 * its 5-tuple, gets its destination address and port rewritten to the
 * backend's (stateless DNAT, checksums updated incrementally) and is passed
 * to the kernel, which routes it to the backend. The same flow always hashes
 * to the same slot, so it sticks to one backend while the ring is unchanged.
 *
 * Return direction: a frame from a backend address and port (the reals map)
 * gets its source rewritten back to the VIP before the kernel routes it to
 * the client. Attach the program on the interfaces facing the clients and on
 * the ones facing the backends.
 *
 * Anything not to a VIP or from a backend is passed untouched. A VIP and its
 * backends share one family (no NAT46/64). With forward_action XDP_TX, the
 * rewritten frames leave again through the interface they came in on
 * instead (a one-arm load balancer behind a router).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xdp_parse.h"

#define MAX_VIPS 16
#define ETH_ALEN 6 /* not in vmlinux.h: a macro */
#define RING_SIZE 65537 /* prime, > 100 x backends per VIP */
#define MAX_BACKENDS 1024

/*
 * vip_key identifies a service. Addresses and ports in network order; an
 * IPv4 address sits in addr[0] with the other words 0.
 */
struct vip_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;
	__u8 family; /* 4 or 6 */
};

/* vip_info locates the VIP's ring: rings[ring * RING_SIZE + slot]. */
struct vip_info {
	__u32 ring;
	__u32 flags;
};

enum backend_flags {
	BACKEND_VALID = 1,
};

/* backend is a value of the backends array; id 0 is never valid. */
struct backend {
	__be32 addr[4];
	__be16 port;
	__u8 family; /* must be the family of the VIPs it serves */
	__u8 flags;
};

/* real_key identifies a backend endpoint on the return path (vip_key layout). */
struct real_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;
	__u8 family;
};

/* real_info is the VIP a backend endpoint answers for. */
struct real_info {
	__be32 vip_addr[4];
	__be16 vip_port;
	__u16 _pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_info);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS * RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, struct real_key);
	__type(value, struct real_info);
} reals SEC(".maps");

/* backend_stats counts frames sent to each backend id (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct counter);
} backend_stats SEC(".maps");

/* hash_seed perturbs the flow hash; user space must not depend on its value. */
volatile const __u32 hash_seed = 0x5bd1e995;

/*
 * forward_action is what a rewritten frame gets: XDP_PASS (the default:
 * the kernel routes it to the backend or client), or XDP_TX for a one-arm
 * load balancer, which sends it back out of the interface it came in on to
 * the router that sent it, with the Ethernet source and destination
 * swapped; the router then routes it by its new addresses. Any other value
 * means XDP_PASS.
 */
volatile const __u32 forward_action = XDP_PASS;

/* forward is the verdict for a rewritten frame (forward_action). */
static __always_inline int forward(struct xdp_md *ctx)
{
	if (forward_action != XDP_TX)
		return XDP_PASS;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP; /* cannot happen: the frame was parsed */
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return XDP_TX;
}

static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 flow_hash(const struct pkt *p)
{
	__u32 h = hash_seed;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		h = mix32(h ^ p->saddr[i]);
		h = mix32(h ^ p->daddr[i]);
	}
	h = mix32(h ^ (((__u32)p->sport << 16) | p->dport));
	return mix32(h ^ p->l4_proto);
}

/*
 * csum_replace updates a 16-bit one's complement checksum for a 32-bit
 * field that changed from `from` to `to` (RFC 1624: HC' = ~(~HC + ~m + m')).
 * All values are in memory (network) order; the sum is order independent.
 */
static __always_inline __u16 csum_replace(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;
	__u32 nfrom = ~from;
	sum += (nfrom & 0xffff) + (nfrom >> 16) + (to & 0xffff) + (to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * rewrite replaces the source or destination address and port of the frame
 * and fixes the IPv4 header checksum and the TCP/UDP checksum. IPv6 has no
 * header checksum; its TCP/UDP checksum covers all four address words.
 */
static __always_inline int rewrite(struct xdp_md *ctx, const struct pkt *p, int dst,
				   const __be32 addr[4], __be16 port)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l4_sum_delta_words = 0;
	__be32 old_addr[4] = {};
	if (p->family == 4) {
		struct iphdr *ip = data + p->l3_off;
		if ((void *)(ip + 1) > data_end)
			return -1;
		__be32 *field = dst ? &ip->daddr : &ip->saddr;
		old_addr[0] = *field;
		*field = addr[0];
		ip->check = csum_replace(ip->check, old_addr[0], addr[0]);
		l4_sum_delta_words = 1;
	} else {
		struct ipv6hdr *ip6 = data + p->l3_off;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		__be32 *field = dst ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			old_addr[i] = field[i];
			field[i] = addr[i];
		}
		l4_sum_delta_words = 4;
	}

	__be16 *port_field, *check;
	if (p->l4_proto == IPPROTO_UDP) {
		struct udphdr *udp = data + p->l4_off;
		if ((void *)(udp + 1) > data_end)
			return -1;
		port_field = dst ? &udp->dest : &udp->source;
		check = &udp->check;
	} else {
		struct tcphdr *tcp = data + p->l4_off;
		if ((void *)(tcp + 1) > data_end)
			return -1;
		port_field = dst ? &tcp->dest : &tcp->source;
		check = &tcp->check;
	}
	__be16 old_port = *port_field;
	*port_field = port;
	/*
	 * A UDP checksum of 0 means "none" in IPv4 and stays so; in IPv6 it is
	 * invalid, and stays so too, for the receiver to drop.
	 */
	if (p->l4_proto == IPPROTO_UDP && *check == 0)
		return 0;
	__u16 sum = *check;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (i < l4_sum_delta_words)
			sum = csum_replace(sum, old_addr[i], addr[i]);
	}
	sum = csum_replace(sum, old_port, port);
	if (p->l4_proto == IPPROTO_UDP && sum == 0)
		sum = 0xffff;
	*check = sum;
	return 0;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	struct pkt p = {};
	if (parse_pkt(ctx, &p) != PARSE_OK || !p.has_ports)
		return XDP_PASS;

	struct vip_key vk = {.port = p.dport, .proto = p.l4_proto, .family = p.family};
	__builtin_memcpy(vk.addr, p.daddr, sizeof(vk.addr));
	struct vip_info *vip = bpf_map_lookup_elem(&vips, &vk);
	if (vip) {
		if (vip->ring >= MAX_VIPS)
			return XDP_DROP;
		__u32 slot = vip->ring * RING_SIZE + flow_hash(&p) % RING_SIZE;
		__u32 *id = bpf_map_lookup_elem(&rings, &slot);
		if (!id)
			return XDP_DROP;
		__u32 bid = *id;
		struct backend *be = bpf_map_lookup_elem(&backends, &bid);
		/* A VIP without backends, or with one of the other family, refuses traffic. */
		if (!be || !(be->flags & BACKEND_VALID) || be->family != p.family)
			return XDP_DROP;
		if (rewrite(ctx, &p, 1, be->addr, be->port))
			return XDP_DROP;
		struct counter *c = bpf_map_lookup_elem(&backend_stats, &bid);
		if (c) {
			c->packets++;
			c->bytes += ctx->data_end - ctx->data;
		}
		return forward(ctx);
	}

	struct real_key rk = {.port = p.sport, .proto = p.l4_proto, .family = p.family};
	__builtin_memcpy(rk.addr, p.saddr, sizeof(rk.addr));
	struct real_info *real = bpf_map_lookup_elem(&reals, &rk);
	if (real) {
		if (rewrite(ctx, &p, 0, real->vip_addr, real->vip_port))
			return XDP_DROP;
		return forward(ctx);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
