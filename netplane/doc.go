// Package netplane is Shoal's network plane: the pod network of a node (a bridge with the node's
// pod CIDR, a veth per pod, address management, routes to other nodes), Service load balancing by
// eBPF socket programs attached to the node's cgroup, and the cluster DNS server.
package netplane
