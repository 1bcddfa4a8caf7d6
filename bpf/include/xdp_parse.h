/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdp_parse.h - bounds-checked parsing of Ethernet frames in XDP, shared by
 * the bpfleet XDP programs.
 *
 * Tolerates up to two 802.1Q/802.1ad tags, parses IPv4 (with options) and
 * IPv6 (with up to four hop-by-hop, routing, destination-options or fragment
 * extension headers), then TCP or UDP. Every read is checked against
 * data_end; every length field is checked against the frame and against the
 * enclosing header, so a truncated or lying frame is reported as malformed
 * instead of being misparsed.
 */
#ifndef BPFLEET_XDP_PARSE_H
#define BPFLEET_XDP_PARSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60

#define IP_OFFSET_MASK 0x1fff
#define IP6_OFFSET_MASK 0xfff8

#define PARSE_VLAN_MAX 2
#define PARSE_IPV6_EXT_MAX 4

/*
 * Headers must end within this many bytes of the frame start (frames may be
 * longer: generic XDP sees GRO packets of up to 64 KiB). It also bounds the
 * variable packet offsets for the verifier.
 */
#define PARSE_FRAME_MAX 0x3fff

enum parse_result {
	PARSE_OK = 0,        /* IPv4 or IPv6 parsed; L4 parsed if TCP/UDP */
	PARSE_NOT_IP = 1,    /* some other ethertype (ARP, a third VLAN tag, ...) */
	PARSE_MALFORMED = 2, /* truncated frame or inconsistent length fields */
};

/* pkt describes a parsed frame; offsets are from the start of the frame. */
struct pkt {
	__u32 l3_off;      /* IP header */
	__u32 l3_end;      /* end of the IP datagram (frame padding excluded) */
	__u32 l4_off;      /* TCP/UDP header, valid when l4_proto is TCP/UDP */
	__u32 payload_off; /* first byte after the TCP/UDP header */
	__u32 payload_end; /* end of the L4 payload */
	__be32 saddr[4];   /* source address; IPv4 in saddr[0] */
	__be32 daddr[4];   /* destination address; IPv4 in daddr[0] */
	__be16 sport;      /* 0 unless has_ports */
	__be16 dport;      /* 0 unless has_ports */
	__u8 family;       /* 4 or 6 */
	__u8 l4_proto;     /* IPPROTO_* of the transport header */
	__u8 has_ports;    /* the TCP/UDP header was parsed */
	__u8 nonfirst_frag;/* a fragment other than the first: no L4 header */
};

static __always_inline int parse_l4(void *data, void *data_end, struct pkt *p)
{
	if (p->nonfirst_frag)
		return PARSE_OK;
	if (p->l4_proto == IPPROTO_UDP) {
		struct udphdr *udp = data + p->l4_off;
		if ((void *)(udp + 1) > data_end || p->l4_off + sizeof(*udp) > p->l3_end)
			return PARSE_MALFORMED;
		__u32 ulen = bpf_ntohs(udp->len);
		if (ulen < sizeof(*udp) || p->l4_off + ulen > p->l3_end)
			return PARSE_MALFORMED;
		p->sport = udp->source;
		p->dport = udp->dest;
		p->payload_off = p->l4_off + sizeof(*udp);
		p->payload_end = p->l4_off + ulen;
		p->has_ports = 1;
	} else if (p->l4_proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + p->l4_off;
		if ((void *)(tcp + 1) > data_end || p->l4_off + sizeof(*tcp) > p->l3_end)
			return PARSE_MALFORMED;
		__u32 hlen = tcp->doff * 4;
		if (hlen < sizeof(*tcp) || p->l4_off + hlen > p->l3_end)
			return PARSE_MALFORMED;
		p->sport = tcp->source;
		p->dport = tcp->dest;
		p->payload_off = p->l4_off + hlen;
		p->payload_end = p->l3_end;
		p->has_ports = 1;
	}
	return PARSE_OK;
}

static __always_inline int parse_ipv4(void *data, void *data_end, __u32 off, __u32 frame_len,
				      struct pkt *p)
{
	struct iphdr *ip = data + off;
	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	__u32 hlen = ip->ihl * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || hlen < sizeof(*ip) || tot < hlen || off + tot > frame_len)
		return PARSE_MALFORMED;
	p->family = 4;
	p->l3_off = off;
	p->l3_end = off + tot;
	p->l4_off = off + hlen;
	p->l4_proto = ip->protocol;
	p->saddr[0] = ip->saddr;
	p->daddr[0] = ip->daddr;
	p->nonfirst_frag = (ip->frag_off & bpf_htons(IP_OFFSET_MASK)) != 0;
	return parse_l4(data, data_end, p);
}

static __always_inline int parse_ipv6(void *data, void *data_end, __u32 off, __u32 frame_len,
				      struct pkt *p)
{
	struct ipv6hdr *ip6 = data + off;
	if ((void *)(ip6 + 1) > data_end)
		return PARSE_MALFORMED;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6 || off + sizeof(*ip6) + plen > frame_len)
		return PARSE_MALFORMED;
	p->family = 6;
	p->l3_off = off;
	p->l3_end = off + sizeof(*ip6) + plen;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);

	__u8 next = ip6->nexthdr;
	__u32 l4 = off + sizeof(*ip6);
#pragma unroll
	for (int i = 0; i < PARSE_IPV6_EXT_MAX; i++) {
		if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST &&
		    next != NEXTHDR_FRAGMENT)
			break;
		struct ipv6_opt_hdr *ext = data + l4;
		if ((void *)(ext + 1) > data_end)
			return PARSE_MALFORMED;
		__u32 elen;
		if (next == NEXTHDR_FRAGMENT) {
			struct frag_hdr *fh = data + l4;
			if ((void *)(fh + 1) > data_end)
				return PARSE_MALFORMED;
			if (fh->frag_off & bpf_htons(IP6_OFFSET_MASK))
				p->nonfirst_frag = 1;
			elen = sizeof(*fh);
		} else {
			elen = (ext->hdrlen + 1) * 8;
		}
		next = ext->nexthdr;
		l4 += elen;
		if (l4 > p->l3_end || l4 > PARSE_FRAME_MAX)
			return PARSE_MALFORMED;
	}
	p->l4_off = l4;
	p->l4_proto = next;
	return parse_l4(data, data_end, p);
}

/* parse_pkt fills p from the frame in ctx and returns a parse_result. */
static __always_inline int parse_pkt(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = data_end - data;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return PARSE_MALFORMED;
	__be16 proto = eth->h_proto;
	__u32 off = sizeof(*eth);
#pragma unroll
	for (int i = 0; i < PARSE_VLAN_MAX; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return PARSE_MALFORMED;
		proto = vh->h_vlan_encapsulated_proto;
		off += sizeof(*vh);
	}
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(data, data_end, off, frame_len, p);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data, data_end, off, frame_len, p);
	return PARSE_NOT_IP;
}

#endif /* BPFLEET_XDP_PARSE_H */
