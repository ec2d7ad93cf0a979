/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * A harness that runs the translation logic of lb.h with BPF_PROG_TEST_RUN.
 * cgroup sock_addr programs cannot be test-run, so the same inline functions
 * are compiled into an XDP program that reads its arguments from the packet
 * and writes the results back into it.
 */
#include "lb.h"

char _license[] SEC("license") = "Dual MIT/GPL";

#define LB_TEST_FWD 1
#define LB_TEST_REV 2

struct lb_test_io {
	__u32 ip;   /* in/out, network byte order */
	__u16 port; /* in/out, network byte order */
	__u8 proto; /* in */
	__u8 op;    /* in: LB_TEST_FWD or LB_TEST_REV */
	__u64 cookie;
	__u64 client;
	__u64 now;
	__s32 result; /* out: enum lb_result */
	__u32 pad;
};

/* Referenced so that the type is emitted into BTF for bpf2go -type. */
const struct lb_test_io *unused_lb_test_io __attribute__((unused));

SEC("xdp")
int lb4_test(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct lb_test_io *io = data;
	__u32 ip;
	__u16 port;

	if ((void *)(io + 1) > end)
		return XDP_ABORTED;
	ip = io->ip;
	port = io->port;
	if (io->op == LB_TEST_FWD)
		io->result = lb4_xlate_fwd(&ip, &port, io->proto, io->cookie, io->client, io->now);
	else if (io->op == LB_TEST_REV)
		io->result = lb4_xlate_rev(&ip, &port, io->cookie);
	else
		return XDP_ABORTED;
	io->ip = ip;
	io->port = port;
	return XDP_PASS;
}
