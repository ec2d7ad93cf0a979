package cluster

import (
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

// masterView is what the master reads of the store, mirrored in memory: listed once when a
// term starts, then kept current by one watch, so that a pass reads no more of the store than
// what changed.
type masterView struct {
	mirror      *store.Mirror
	applied     *store.Table[AppliedRecord]
	placements  *store.Table[Placement]
	status      *store.Table[PodStatusRecord]
	nodes       *store.Table[NodeRecord]
	known       *store.Table[NodeRecord]
	cordons     *store.Table[CordonRecord]
	services    *store.Table[ServiceRecord]
	podCIDRs    *store.Table[string]
	deployments *store.Table[DeploymentRecord]
}

// newMasterView mirrors what the master reads. poke is called (with the mirror's lock held) on
// every change that is worth a pass: the applied commit, placements, pod status, cordons, and
// what the controllers use of a node record (its presence, labels, addresses, allocatable
// resources, schedulability, taints and the node ports it serves) — not a new heartbeat alone.
func newMasterView(c *store.Client, poke func()) *masterView {
	mir := store.NewMirror(c, prefix)
	appliedChange := func(string, *AppliedRecord, *AppliedRecord) { poke() }
	nodeChange := func(_ string, old, new *NodeRecord) {
		if old == nil || new == nil || nodeFacts(*old) != nodeFacts(*new) {
			poke()
		}
	}
	return &masterView{
		mirror:      mir,
		applied:     store.Track(mir, appliedKey, appliedChange),
		placements:  store.Track(mir, placementPrefix, func(string, *Placement, *Placement) { poke() }),
		status:      store.Track(mir, statusPrefix, func(string, *PodStatusRecord, *PodStatusRecord) { poke() }),
		nodes:       store.Track(mir, nodesPrefix, nodeChange),
		known:       store.Track(mir, knownPrefix, func(string, *NodeRecord, *NodeRecord) { poke() }),
		cordons:     store.Track(mir, cordonPrefix, func(string, *CordonRecord, *CordonRecord) { poke() }),
		services:    store.Track[ServiceRecord](mir, servicesPrefix, nil),
		podCIDRs:    store.Track[string](mir, podCIDRsPrefix, nil),
		deployments: store.Track[DeploymentRecord](mir, deploymentsPrefix, nil),
	}
}

// nodeFacts is what the controllers use of a node record.
func nodeFacts(n NodeRecord) string {
	return fmt.Sprint(n.Labels, n.Allocatable, n.Unschedulable, n.Addresses, n.Taints, n.NodePorts, n.ReservedPorts)
}

// observed is the pods, the registered nodes and the known nodes of the view as reconcile sees
// them (State.Pods, Nodes and Known), and the placements by pod UID.
func (m *Master) observed() (reconcile.State, map[string]Placement) {
	pls, sts, nodes := m.view.placements.List(), m.view.status.List(), m.view.nodes.List()
	known := map[string]bool{}
	for _, kv := range m.view.known.List() {
		known[kv.Value.Name] = true
	}
	cordons := m.view.cordons.List()
	cordoned, draining := map[string]bool{}, map[string]bool{}
	for _, kv := range cordons {
		name := strings.TrimPrefix(kv.Key, cordonPrefix)
		cordoned[name], draining[name] = true, kv.Value.Drain
	}
	status := map[string]PodStatusRecord{}
	for _, s := range sts {
		status[s.Value.UID] = s.Value
	}
	var rnodes []reconcile.Node
	for _, n := range nodes {
		rnodes = append(rnodes, reconcile.Node{Name: n.Value.Name, Ready: true, Unschedulable: n.Value.Unschedulable || cordoned[n.Value.Name],
			Draining: draining[n.Value.Name], Labels: n.Value.Labels, Taints: ReconcileTaints(n.Value.Taints),
			Allocatable: reconcile.Resources(n.Value.Allocatable)})
	}
	byUID := map[string]Placement{}
	var pods []reconcile.Pod
	for _, kv := range pls {
		pl := kv.Value
		byUID[pl.Spec.UID] = pl
		p := reconcile.Pod{UID: pl.Spec.UID, Owner: pl.Owner, TemplateHash: pl.TemplateHash, Spec: pl.Spec.Pod,
			Node: pl.Node, Commit: pl.Commit, Created: pl.Created, Terminating: pl.Terminating, Phase: manifests.PodPending}
		if pl.Spec.Pod != nil {
			p.Namespace, p.Name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
		}
		if pl.Node == "" {
			p.Reason, p.Message = "Unschedulable", pl.Reason
		}
		if st, ok := status[pl.Spec.UID]; ok {
			p.Phase, p.Ready, p.ReadySince, p.IP = st.Status.Phase, PodReady(st.Status), st.ReadySince, st.Status.PodIP
			p.Reason, p.Message = st.Status.Reason, st.Status.Message
			for _, cs := range st.Status.ContainerStatuses {
				p.Restarts += cs.RestartCount
			}
		}
		pods = append(pods, p)
	}
	return reconcile.State{Pods: pods, Nodes: rnodes, Known: known}, byUID
}
