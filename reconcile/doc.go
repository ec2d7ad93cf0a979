// Package reconcile is Shoal's pure control logic: given the desired state (objects decoded by
// package manifests) and the observed state of the cluster, it plans the actions that close the
// gap — Deployment rollouts, scheduling pods onto nodes, syncing a node's pods and a Service's
// endpoints. It performs no I/O of its own: it talks to the runtime, the network plane and the
// store only through interfaces, so it runs without root and is tested with tables and scenarios.
package reconcile
