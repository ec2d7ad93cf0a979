// Package dns is the cluster DNS server of a Shoal node. The pods of the node use it as their
// resolver (their resolv.conf points at it).
//
// Names inside the cluster domain are answered from memory, authoritatively:
//
//	<svc>.<ns>.svc.<domain>                  A: the ClusterIP; headless Services: the ready pod IPs
//	_<port>._<proto>.<svc>.<ns>.svc.<domain> SRV for every named port
//	<a-b-c-d>.<svc>.<ns>.svc.<domain>        A: one ready pod of a headless Service
//	<hostname>.<svc>.<ns>.svc.<domain>       A: the ready pods of a headless Service with that
//	                                         hostname and the Service's name as subdomain
//	<a-b-c-d>.<ns>.pod.<domain>              A: the address written in the name (as Kubernetes does)
//
// The SRV records of a headless Service point at each ready pod by name: <hostname>.<svc>... for
// a pod with a hostname (as CoreDNS does, what a StatefulSet's pods get), <a-b-c-d>.<svc>...
// otherwise. A ClusterIP Service's SRV records point at <svc>.<ns>.svc.<domain>, and its pods'
// hostnames get no names.
//
// Unknown names inside the domain get NXDOMAIN, known names without records of the asked type get
// an empty NOERROR answer; both carry the zone's SOA with a 5 second negative TTL, so a Service
// created a moment after a failed lookup resolves a few seconds later, not half an hour later.
// Lookups never leave the process: the search storm that ndots:5 causes for every external name
// (<name>.<ns>.svc.<domain>, <name>.svc.<domain>, <name>.<domain>) is answered from memory.
//
// All other names are forwarded to the upstream servers of the node (/etc/resolv.conf by default),
// each query from a fresh socket, within a deadline, with the client's transport (a truncated UDP
// answer makes the client retry on TCP, and that retry is forwarded over TCP). Forwarded answers
// are cached for at most 30 seconds, negative ones for at most 5.
//
// Every node runs its own server on an address of the node, so pods reach it without a Service
// VIP in between: no connected UDP socket stays pinned to a DNS backend that went away.
//
// The caller keeps the records current with [Server.Update], which swaps the whole set at once;
// queries read the set without locks.
package dns
