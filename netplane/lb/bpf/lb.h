/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * Shoal Service load balancing: maps and the translation logic shared by the
 * socket hooks (lb.c) and the XDP harness that unit-tests it (lb_test.c).
 *
 * Addresses and ports are kept in network byte order everywhere, exactly as
 * struct bpf_sock_addr carries them, so a hook copies them without swapping.
 */
#ifndef SHOAL_LB_H
#define SHOAL_LB_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LB_MAX_SERVICES 65536
#define LB_MAX_BACKENDS 262144
#define LB_MAX_REVNAT 65536
#define LB_MAX_AFFINITY 65536
#define LB_MAX_DESTROY 4096

#define LB_PROTO_TCP 6
#define LB_PROTO_UDP 17

/* lb4_service.flags */
#define LB_FLAG_AFFINITY_CLIENTIP 1

#define LB_NSEC_PER_SEC 1000000000ULL

/* Results of lb4_xlate_fwd and lb4_xlate_rev. */
enum lb_result {
	LB_MISS = 0,       /* not a service address: leave the socket alone */
	LB_XLATED = 1,     /* address rewritten */
	LB_NO_BACKEND = 2, /* a service without backends: refuse */
};

/* Key of lb4_services: a Service's virtual IP, port and protocol. */
struct lb4_key {
	__u32 vip;  /* network byte order */
	__u16 port; /* network byte order */
	__u8 proto; /* LB_PROTO_TCP or LB_PROTO_UDP */
	__u8 pad;
};

/* Value of lb4_services. */
struct lb4_service {
	__u32 id;               /* 1..LB_MAX_SERVICES-1, index of lb4_rr */
	__u32 count;            /* number of backend slots 0..count-1 */
	__u32 flags;            /* LB_FLAG_* */
	__u32 affinity_timeout; /* seconds */
};

/* Key of lb4_backends: a slot of a service. */
struct lb4_slot_key {
	__u32 id;
	__u32 slot;
};

/* Value of lb4_backends and of the affinity entries: a backend address. */
struct lb4_backend {
	__u32 ip;   /* network byte order */
	__u16 port; /* network byte order */
	__u16 pad;
};

/* Key of lb4_revnat: a socket and the backend it was sent to. */
struct lb4_revnat_key {
	__u64 cookie;
	__u32 ip;   /* backend, network byte order */
	__u16 port; /* backend, network byte order */
	__u16 pad;
};

/* Value of lb4_revnat: the service address the socket asked for. */
struct lb4_revnat {
	__u32 vip;
	__u16 port;
	__u8 proto;
	__u8 pad;
	__u32 id;
	__u32 pad2;
};

/* Key of lb4_affinity: a client (its network namespace) and a service. */
struct lb4_affinity_key {
	__u64 client;
	__u32 id;
	__u32 pad;
};

/* Value of lb4_affinity. */
struct lb4_affinity {
	struct lb4_backend backend;
	__u64 last_used; /* bpf_ktime_get_ns() */
};

/* Key of lb4_destroy: a backend removed from a service. */
struct lb4_destroy_key {
	__u32 id;
	__u32 ip;
	__u16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb4_slot_key);
	__type(value, struct lb4_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_backends SEC(".maps");

/* Round-robin position per service id, advanced with an atomic add. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_rr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_REVNAT);
	__type(key, struct lb4_revnat_key);
	__type(value, struct lb4_revnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_AFFINITY);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb4_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_affinity SEC(".maps");

/*
 * lb4_xlate_fwd translates a destination *ip:*port of protocol proto when it
 * is a service address. cookie identifies the socket (0: record no reverse
 * entry), client the client for session affinity, now is bpf_ktime_get_ns().
 */
static __always_inline int lb4_xlate_fwd(__u32 *ip, __u16 *port, __u8 proto,
					 __u64 cookie, __u64 client, __u64 now)
{
	struct lb4_key key = { .vip = *ip, .port = *port, .proto = proto };
	struct lb4_service *svc;
	struct lb4_backend chosen = {};
	int have = 0;
	__u32 id, count, flags;

	svc = bpf_map_lookup_elem(&lb4_services, &key);
	if (!svc)
		return LB_MISS;
	id = svc->id;
	count = svc->count;
	flags = svc->flags;
	if (count == 0)
		return LB_NO_BACKEND;

	struct lb4_affinity_key akey = { .client = client, .id = id };
	if (flags & LB_FLAG_AFFINITY_CLIENTIP) {
		struct lb4_affinity *aff = bpf_map_lookup_elem(&lb4_affinity, &akey);
		__u64 timeout = (__u64)svc->affinity_timeout * LB_NSEC_PER_SEC;

		if (aff && now >= aff->last_used && now - aff->last_used <= timeout) {
			chosen = aff->backend;
			aff->last_used = now;
			have = 1;
		}
	}

	if (!have) {
		__u32 *pos = bpf_map_lookup_elem(&lb4_rr, &id);
		struct lb4_slot_key skey = { .id = id };
		struct lb4_backend *be;

		if (!pos)
			return LB_NO_BACKEND;
		skey.slot = __sync_fetch_and_add(pos, 1) % count;
		be = bpf_map_lookup_elem(&lb4_backends, &skey);
		if (!be)
			return LB_NO_BACKEND;
		chosen = *be;
		if (flags & LB_FLAG_AFFINITY_CLIENTIP) {
			struct lb4_affinity aff = { .backend = chosen, .last_used = now };

			bpf_map_update_elem(&lb4_affinity, &akey, &aff, BPF_ANY);
		}
	}

	if (cookie) {
		struct lb4_revnat_key rkey = { .cookie = cookie, .ip = chosen.ip, .port = chosen.port };
		struct lb4_revnat rval = { .vip = *ip, .port = *port, .proto = proto, .id = id };
		struct lb4_revnat *old = bpf_map_lookup_elem(&lb4_revnat, &rkey);

		if (!old || old->vip != rval.vip || old->port != rval.port ||
		    old->proto != rval.proto || old->id != rval.id)
			bpf_map_update_elem(&lb4_revnat, &rkey, &rval, BPF_ANY);
	}

	*ip = chosen.ip;
	*port = chosen.port;
	return LB_XLATED;
}

/*
 * lb4_xlate_rev turns a backend address *ip:*port seen by socket cookie back
 * into the service address the socket asked for. The entry is honoured only
 * while the service still exists under the same id.
 */
static __always_inline int lb4_xlate_rev(__u32 *ip, __u16 *port, __u64 cookie)
{
	struct lb4_revnat_key rkey = { .cookie = cookie, .ip = *ip, .port = *port };
	struct lb4_revnat *rev;
	struct lb4_service *svc;

	rev = bpf_map_lookup_elem(&lb4_revnat, &rkey);
	if (!rev)
		return LB_MISS;

	struct lb4_key key = { .vip = rev->vip, .port = rev->port, .proto = rev->proto };
	svc = bpf_map_lookup_elem(&lb4_services, &key);
	if (!svc || svc->id != rev->id) {
		bpf_map_delete_elem(&lb4_revnat, &rkey);
		return LB_MISS;
	}
	*ip = rev->vip;
	*port = rev->port;
	return LB_XLATED;
}

#endif /* SHOAL_LB_H */
