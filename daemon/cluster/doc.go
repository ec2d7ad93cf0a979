// Package cluster is what every Shoal daemon runs on top of the shared store: the records and keys
// of the cluster's state, the master (commit acceptance and the controllers, while this daemon
// holds the election) and the node agent (the pods placed on this node).
//
// Only the master writes desired state and placements, and each of its writes is fenced by its
// election key; a node writes only its own registration, the status of its own pods and, on its
// lease, the CPU and memory its pods use.
package cluster
