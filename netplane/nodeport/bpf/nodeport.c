/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * Shoal NodePort Services: tc programs on a node's external interface.
 *
 * np4_ingress sees every packet that arrives on the interface:
 *  - a reply of a backend on another node to a source-NATed flow
 *    (backend -> node_ip:snat_port) is translated back
 *    (node_ip:node_port -> client) and redirected out of the interface;
 *  - a packet to node_ip:<NodePort> is translated to a backend chosen
 *    round-robin for the flow's first packet and remembered in np4_ct, so
 *    that every later packet of the flow goes to the same backend. A backend
 *    that is reached through this same interface (another node) also gets
 *    the source rewritten to node_ip and a free port, so its replies come
 *    back here; such packets are redirected out of the interface. Packets to
 *    local backends are handed to the stack, which forwards them (to the
 *    pod bridge) with the client's address as source.
 * np4_egress sees the replies of local backends leaving towards the client
 * and gives them node_ip:<NodePort> as source again.
 *
 * Addresses and ports are in network byte order everywhere.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char _license[] SEC("license") = "Dual MIT/GPL";

/* tcx return codes (linux/bpf.h of newer kernels). */
#define TCX_NEXT -1
#define TCX_PASS 0
#define TCX_DROP 2

#define AF_INET 2
#define NP_PROTO_TCP 6
#define NP_PROTO_UDP 17

#define NP_MAX_SERVICES 4096
#define NP_MAX_BACKENDS 65536
#define NP_MAX_CT 131072

/* Source ports chosen for source NAT when the client's port is taken. */
#define NP_SNAT_MIN 32768
#define NP_SNAT_MAX 60999
#define NP_SNAT_TRIES 16

/* np4_ct.flags and np4_rev.flags */
#define NP_FLAG_SNAT 1

/* Set at load time: the node's address on the external interface. */
volatile const __u32 node_ip = 0;

/* Key of np4_services: a NodePort. */
struct np4_svc_key {
	__u16 port;
	__u8 proto;
	__u8 pad;
};

/* Value of np4_services. */
struct np4_service {
	__u32 id;    /* 1..NP_MAX_SERVICES-1, index of np4_rr */
	__u32 count; /* backend slots 0..count-1 */
};

/* Key of np4_backends. */
struct np4_slot_key {
	__u32 id;
	__u32 slot;
};

/* Value of np4_backends. */
struct np4_backend {
	__u32 ip;
	__u16 port;
	__u16 pad;
};

/* A packet's addresses as seen on the wire. */
struct np4_tuple {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* Value of np4_ct (keyed by the client's packets, client -> node_ip:port). */
struct np4_ct {
	__u32 backend_ip;
	__u16 backend_port;
	__u16 snat_port; /* with NP_FLAG_SNAT */
	__u32 id;
	__u32 flags;
};

/* Value of np4_rev (keyed by the backend's replies): the addresses to put
 * into a reply. */
struct np4_rev {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NP_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct np4_svc_key);
	__type(value, struct np4_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NP_MAX_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct np4_slot_key);
	__type(value, struct np4_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np4_backends SEC(".maps");

/* Round-robin position per service id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NP_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np4_rr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_CT);
	__type(key, struct np4_tuple);
	__type(value, struct np4_ct);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np4_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_CT);
	__type(key, struct np4_tuple);
	__type(value, struct np4_rev);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np4_rev SEC(".maps");

/* A parsed IPv4 TCP or UDP packet. */
struct np4_pkt {
	struct np4_tuple t;
	__u32 l4off;
	__u32 csum_off;
	__u64 csum_flags;
};

#define IP_OFF(field) (ETH_HLEN + __builtin_offsetof(struct iphdr, field))

static __always_inline int np4_parse(struct __sk_buff *skb, struct np4_pkt *p)
{
	struct iphdr ip;
	__u16 ports[2];

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return -1;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5)
		return -1;
	/* Fragments carry no ports (except the first): not handled. */
	if (ip.frag_off & bpf_htons(0x3fff))
		return -1;
	p->l4off = ETH_HLEN + ip.ihl * 4;
	switch (ip.protocol) {
	case NP_PROTO_TCP:
		p->csum_off = p->l4off + 16;
		p->csum_flags = 0;
		break;
	case NP_PROTO_UDP:
		p->csum_off = p->l4off + 6;
		p->csum_flags = BPF_F_MARK_MANGLED_0;
		break;
	default:
		return -1;
	}
	if (bpf_skb_load_bytes(skb, p->l4off, ports, sizeof(ports)) < 0)
		return -1;
	p->t.saddr = ip.saddr;
	p->t.daddr = ip.daddr;
	p->t.sport = ports[0];
	p->t.dport = ports[1];
	p->t.proto = ip.protocol;
	return 0;
}

static __always_inline int np4_set_addr(struct np4_pkt *p, struct __sk_buff *skb,
					__u32 off, __u32 from, __u32 to)
{
	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum_off, from, to, p->csum_flags | BPF_F_PSEUDO_HDR | 4) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, IP_OFF(check), from, to, 4) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, 4, 0);
}

static __always_inline int np4_set_port(struct np4_pkt *p, struct __sk_buff *skb,
					__u32 off, __u16 from, __u16 to)
{
	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum_off, from, to, p->csum_flags | 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, 2, 0);
}

/* np4_rewrite gives the packet the addresses saddr:sport -> daddr:dport and
 * fixes the IP and TCP/UDP checksums. */
static __always_inline int np4_rewrite(struct __sk_buff *skb, struct np4_pkt *p, __u32 saddr,
				       __u16 sport, __u32 daddr, __u16 dport)
{
	if (np4_set_addr(p, skb, IP_OFF(saddr), p->t.saddr, saddr) < 0 ||
	    np4_set_addr(p, skb, IP_OFF(daddr), p->t.daddr, daddr) < 0 ||
	    np4_set_port(p, skb, p->l4off, p->t.sport, sport) < 0 ||
	    np4_set_port(p, skb, p->l4off + 2, p->t.dport, dport) < 0)
		return -1;
	return 0;
}

/* np4_out sends a packet out of the interface it came in on, resolving the
 * next hop of its (rewritten) destination. */
static __always_inline int np4_out(struct __sk_buff *skb)
{
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

/* np4_remote reports whether the stack would forward a packet from saddr to
 * daddr out of the interface it came in on (a backend on another node). */
static __always_inline int np4_remote(struct __sk_buff *skb, __u32 saddr, __u32 daddr, __u8 proto)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.l4_protocol = proto;
	fib.ipv4_src = saddr;
	fib.ipv4_dst = daddr;
	fib.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	return fib.ifindex == skb->ingress_ifindex;
}

/* np4_new_rev records the reverse translation of a new flow, choosing the
 * source port for source NAT (the client's own when it is free). */
static __always_inline int np4_new_rev(struct np4_pkt *p, struct np4_ct *ct)
{
	struct np4_tuple rkey = {
		.saddr = ct->backend_ip,
		.sport = ct->backend_port,
		.proto = p->t.proto,
	};
	struct np4_rev rev = {
		.saddr = p->t.daddr,
		.sport = p->t.dport,
		.daddr = p->t.saddr,
		.dport = p->t.sport,
		.flags = ct->flags,
	};

	if (!(ct->flags & NP_FLAG_SNAT)) {
		rkey.daddr = p->t.saddr;
		rkey.dport = p->t.sport;
		return bpf_map_update_elem(&np4_rev, &rkey, &rev, BPF_ANY);
	}
	rkey.daddr = node_ip;
	rkey.dport = p->t.sport;
	for (int i = 0; i < NP_SNAT_TRIES; i++) {
		if (bpf_map_update_elem(&np4_rev, &rkey, &rev, BPF_NOEXIST) == 0) {
			ct->snat_port = rkey.dport;
			return 0;
		}
		rkey.dport = bpf_htons(NP_SNAT_MIN + bpf_get_prandom_u32() % (NP_SNAT_MAX - NP_SNAT_MIN + 1));
	}
	return -1;
}

SEC("tcx/ingress")
int np4_ingress(struct __sk_buff *skb)
{
	struct np4_pkt p = {};
	struct np4_rev *rev;
	struct np4_service *svc;
	struct np4_ct *ctp, ct = {};

	if (np4_parse(skb, &p) < 0)
		return TCX_NEXT;

	/* A reply of a backend on another node. */
	rev = bpf_map_lookup_elem(&np4_rev, &p.t);
	if (rev && (rev->flags & NP_FLAG_SNAT)) {
		struct np4_rev r = *rev;

		if (np4_rewrite(skb, &p, r.saddr, r.sport, r.daddr, r.dport) < 0)
			return TCX_DROP;
		return np4_out(skb);
	}

	if (p.t.daddr != node_ip)
		return TCX_NEXT;
	struct np4_svc_key skey = { .port = p.t.dport, .proto = p.t.proto };
	svc = bpf_map_lookup_elem(&np4_services, &skey);
	if (!svc)
		return TCX_NEXT;
	__u32 id = svc->id;
	__u32 count = svc->count;

	ctp = bpf_map_lookup_elem(&np4_ct, &p.t);
	if (ctp && ctp->id == id) {
		ct = *ctp;
	} else {
		if (count == 0)
			return TCX_DROP;
		__u32 *pos = bpf_map_lookup_elem(&np4_rr, &id);
		if (!pos)
			return TCX_DROP;
		struct np4_slot_key bkey = { .id = id, .slot = __sync_fetch_and_add(pos, 1) % count };
		struct np4_backend *be = bpf_map_lookup_elem(&np4_backends, &bkey);
		if (!be)
			return TCX_DROP;
		ct.backend_ip = be->ip;
		ct.backend_port = be->port;
		ct.id = id;
		if (np4_remote(skb, p.t.saddr, be->ip, p.t.proto))
			ct.flags = NP_FLAG_SNAT;
		if (np4_new_rev(&p, &ct) < 0)
			return TCX_DROP;
		bpf_map_update_elem(&np4_ct, &p.t, &ct, BPF_ANY);
	}

	if (ct.flags & NP_FLAG_SNAT) {
		if (np4_rewrite(skb, &p, node_ip, ct.snat_port, ct.backend_ip, ct.backend_port) < 0)
			return TCX_DROP;
		return np4_out(skb);
	}
	if (np4_rewrite(skb, &p, p.t.saddr, p.t.sport, ct.backend_ip, ct.backend_port) < 0)
		return TCX_DROP;
	return TCX_PASS;
}

SEC("tcx/egress")
int np4_egress(struct __sk_buff *skb)
{
	struct np4_pkt p = {};
	struct np4_rev *rev;

	if (np4_parse(skb, &p) < 0)
		return TCX_NEXT;
	rev = bpf_map_lookup_elem(&np4_rev, &p.t);
	if (!rev || (rev->flags & NP_FLAG_SNAT))
		return TCX_NEXT;
	struct np4_rev r = *rev;

	if (np4_rewrite(skb, &p, r.saddr, r.sport, r.daddr, r.dport) < 0)
		return TCX_DROP;
	return TCX_NEXT;
}
