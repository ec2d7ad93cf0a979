// Package reconcile is Shoal's controller manager and scheduler as pure
// code. Reconcile takes the desired state (the applied commit's objects,
// decoded and defaulted by package manifests), the observed state (pods and
// nodes, as the nodes report them) and the time, and returns a Plan: the
// pods to create, delete and bind, the status of every Deployment, the
// pods no node can take and why, and short events for people.
//
// It does what Kubernetes' controllers do, within Shoal's model, where a
// Deployment's pods belong to a revision by their pod-template-hash and no
// ReplicaSet objects exist:
//
//   - Deployments scale to their replicas and roll out a new template with
//     RollingUpdate (bounded by maxSurge and maxUnavailable, driven by
//     readiness and minReadySeconds) or Recreate; a paused Deployment is
//     left alone; a missing or failed pod is replaced; a Deployment removed
//     from git has its pods deleted.
//   - Standalone Pod objects get one pod each, replaced when the object
//     changes and deleted when it is removed.
//   - A node that stays not ready for State.NodeLostGrace loses its
//     Deployment pods to other nodes; its standalone pods stay, Unknown.
//     A node that pods are placed on but that is not registered is not
//     ready from the pass that finds it so, which Plan.Lost records for
//     the next pass (State.Lost); a node removed from the cluster (not in
//     State.Known) loses its Deployment pods at once.
//   - The scheduler filters nodes as kube-scheduler's default plugins do:
//     ready and not cordoned (unless the pod tolerates
//     node.kubernetes.io/unschedulable and the node is not draining), taints
//     tolerated, nodeSelector and node affinity, free host ports, room for
//     the CPU, memory and ephemeral-storage requests, topology spread
//     (DoNotSchedule) and inter-pod affinity and anti-affinity, counting the
//     pods placed earlier in the same plan. It ranks the nodes that are left
//     by kube-scheduler's weighted scores (PreferNoSchedule taints, preferred
//     node and pod affinity, ScheduleAnyway spread), then spreads a
//     Deployment's pods, then prefers the least requested node.
//   - Pods on a node with a NoExecute taint they do not tolerate are
//     evicted, at once or after their tolerationSeconds, and replaced.
//   - The Deployment pods of a draining node are deleted and replaced
//     elsewhere in the same plan; its standalone pods stay.
//   - Every ready node without a pod CIDR gets the lowest free /24 of
//     State.ClusterCIDR.
//   - A new pod carries the ConfigMaps and Secrets it refers to, and its
//     ServiceAccount's imagePullSecrets when it lists none.
//   - Services get their virtual IPs, node ports and endpoints
//     (State.ServiceCIDR).
//
// Reconcile does no I/O, starts no goroutine, reads no clock and draws no
// random numbers: new pods' UIDs and name suffixes come from an IDSource.
// The same input gives the same plan, which is why the package is tested
// with tables and with scenario files (testdata/*.txt, regenerated with
// go test ./reconcile -rewrite). The elected master calls Reconcile in a
// loop, applies the plan to the store with fenced writes and calls it again
// when something changes or Plan.RequeueAfter has passed; the nodes run the
// pods.
package reconcile
