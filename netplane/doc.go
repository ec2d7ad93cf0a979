// Package netplane is Shoal's network plane. Its subpackages:
//
//   - podnet: the pod network of a node (a bridge with the node's pod CIDR, a veth per pod,
//     address management, routes to other nodes, egress masquerading and host ports through
//     nftables).
//   - lb: Service ClusterIPs load-balanced by eBPF socket programs attached to the node's cgroup.
//   - nodeport: NodePort Services served by eBPF tc programs on the node's external interface.
//   - dns: the cluster DNS server of a node.
//   - internal/bpffs and internal/slots: the BPF file system pins and the service and backend
//     tables that lb and nodeport share.
package netplane
