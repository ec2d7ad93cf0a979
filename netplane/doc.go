// Package netplane is Shoal's network plane: everything a node programs so that its pods reach
// each other, Services and the outside, driven declaratively.
//
// The caller keeps the node's whole desired network state in one Config (the cluster's Services
// with their endpoints, routes to the other nodes' pod CIDRs, the host ports of the node's pods,
// the ports the daemon itself listens on) and hands it to Plane.Set whenever any part changes.
// Set converges the node to exactly that Config and is idempotent; it normalizes the Config into
// a State (every port of a Service's virtual IP, every port opened on the node's address, the
// routes, the host ports, the DNS records) and reports in its Result what it left out by rule
// (a LoadBalancer port the daemon listens on, or that is a node port; a pending LoadBalancer
// Service; node ports on a node without a node interface), refused as invalid or conflicting,
// or could not apply. Plane.State reads back what the node holds. Pods get their interface
// from Kernel.Setup and give it back with Kernel.Teardown, one pod at a time, as the runtime
// asks.
//
// Kernel is the plane in the kernel; Fake is an in-memory plane with the same rules, for tests
// of callers; the conformance suite in netplanetest runs against both. When the kernel lacks a
// feature the plane needs, Open returns an error matching ErrNotSupported that names it.
//
// The parts, each a package of its own:
//
//   - podnet: the pod network of a node (a bridge with the node's pod CIDR, a veth per pod,
//     address management, routes to other nodes, egress masquerading and host ports through
//     nftables).
//   - lb: Service ClusterIPs load-balanced by eBPF socket programs attached to the node's cgroup.
//   - nodeport: NodePort Services and LoadBalancer ports served by eBPF tc programs on the
//     node's external interface.
//   - dns: the cluster DNS server of a node.
//   - netplanetest: the conformance suite of Plane implementations.
//   - internal/bpffs and internal/slots: the BPF file system pins, and the service and backend
//     tables that lb and nodeport share with one protocol for changing them.
//   - internal/testnet: the namespaces, links, cgroups and pin directories the kernel tests
//     make and remove.
package netplane
