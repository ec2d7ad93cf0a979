// Package podnet is the pod network of one Shoal node.
//
// A node owns one IPv4 pod CIDR (a /24 of the cluster CIDR, by default). New makes a Linux
// bridge that holds the CIDR's first address as the pods' gateway, an "unreachable" route for
// the service CIDR (a virtual IP that escapes translation fails at once and never leaves the
// machine), and an nftables table "shoal-<node>" that masquerades traffic from pods to
// addresses outside the cluster. Setup gives each pod a network namespace with one end of a
// veth pair as eth0, holding the pod's address and a default route through the gateway; the
// other end joins the bridge. SetRoutes points the pod CIDRs of the other nodes at their node
// addresses (host-gw routing).
//
// SetHostPorts forwards host ports as the CNI portmap plugin does for Kubernetes' hostPort:
// DNAT rules in the node's table send traffic for the node's addresses (or one HostIP) on a
// port to a pod, from other hosts, from the node itself (127.0.0.1 included) and from pods
// (masqueraded, so that the answers come back through the node). The set is declarative, kept
// in the state dir and programmed again by New, and a pod's ports work from its Setup to its
// Teardown.
//
// Addresses are kept on disk, one file per allocated address, so allocations survive daemon
// restarts and crashes: allocation is idempotent per pod UID, Teardown releases it, and
// Reconcile frees addresses whose pod network namespace no longer exists.
//
// When Config.NetNS names a network namespace, everything on the node side (bridge, routes,
// nftables table, sysctls) is made inside that namespace instead of the caller's; this is how
// several nodes share one machine in tests and demos.
package podnet
