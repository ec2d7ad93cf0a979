/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * Shoal socket-level Service load balancing. The programs are attached to a
 * node's cgroup v2 directory and translate Service virtual IPs to backends
 * when a socket of that cgroup connects (TCP, connected UDP) or sends
 * (unconnected UDP), and translate back on receive and getpeername.
 */
#include "lb.h"

#define SYS_REJECT 0
#define SYS_PROCEED 1

#define ECONNREFUSED 111
#define AF_INET 2

char _license[] SEC("license") = "Dual MIT/GPL";

static __always_inline int lb4_proto(const struct bpf_sock_addr *ctx, __u8 *proto)
{
	switch (ctx->protocol) {
	case LB_PROTO_TCP:
		*proto = LB_PROTO_TCP;
		return 1;
	case LB_PROTO_UDP:
		*proto = LB_PROTO_UDP;
		return 1;
	}
	return 0;
}

static __always_inline int lb4_fwd(struct bpf_sock_addr *ctx, __u8 proto)
{
	__u32 ip = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;
	int ret;

	ret = lb4_xlate_fwd(&ip, &port, proto, bpf_get_socket_cookie(ctx),
			    bpf_get_netns_cookie(ctx), bpf_ktime_get_ns());
	switch (ret) {
	case LB_XLATED:
		ctx->user_ip4 = ip;
		ctx->user_port = (__u32)port;
		return SYS_PROCEED;
	case LB_NO_BACKEND:
		/* The call fails at once with ECONNREFUSED instead of EPERM. */
		bpf_set_retval(-ECONNREFUSED);
		return SYS_REJECT;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int lb4_connect(struct bpf_sock_addr *ctx)
{
	__u8 proto;

	if (!lb4_proto(ctx, &proto))
		return SYS_PROCEED;
	return lb4_fwd(ctx, proto);
}

SEC("cgroup/sendmsg4")
int lb4_sendmsg(struct bpf_sock_addr *ctx)
{
	return lb4_fwd(ctx, LB_PROTO_UDP);
}

static __always_inline void lb4_rev(struct bpf_sock_addr *ctx)
{
	__u32 ip = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;

	if (lb4_xlate_rev(&ip, &port, bpf_get_socket_cookie(ctx)) == LB_XLATED) {
		ctx->user_ip4 = ip;
		ctx->user_port = (__u32)port;
	}
}

SEC("cgroup/recvmsg4")
int lb4_recvmsg(struct bpf_sock_addr *ctx)
{
	lb4_rev(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int lb4_getpeername(struct bpf_sock_addr *ctx)
{
	lb4_rev(ctx);
	return SYS_PROCEED;
}

/*
 * Destroying UDP sockets still connected to removed backends. User space
 * fills lb4_destroy with (service id, backend) pairs and reads a udp
 * iterator in each network namespace that holds sockets of the cgroup. Only
 * sockets whose translation this instance recorded in lb4_revnat are
 * destroyed; their owner sees ECONNABORTED and reconnects through the
 * service again.
 *
 * The kernel types below are declared with only the fields used; CO-RE
 * relocations match them against the running kernel's BTF.
 */
struct sock_common {
	__u32 skc_daddr;
	__u16 skc_dport;
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
	__u32 uid __attribute__((aligned(8)));
	int bucket __attribute__((aligned(8)));
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_DESTROY);
	__type(key, struct lb4_destroy_key);
	__type(value, __u8);
} lb4_destroy SEC(".maps");

SEC("iter/udp")
int lb4_sock_destroy(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct sock_common *skc;
	struct lb4_revnat *rev;

	if (!udp)
		return 0;
	skc = (struct sock_common *)udp;
	if (skc->skc_family != AF_INET)
		return 0;

	struct lb4_revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(skc),
		.ip = skc->skc_daddr,
		.port = skc->skc_dport,
	};
	rev = bpf_map_lookup_elem(&lb4_revnat, &rkey);
	if (!rev)
		return 0;

	struct lb4_destroy_key dkey = { .id = rev->id, .ip = rkey.ip, .port = rkey.port };
	if (!bpf_map_lookup_elem(&lb4_destroy, &dkey))
		return 0;
	bpf_sock_destroy(skc);
	return 0;
}
