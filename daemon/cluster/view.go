package cluster

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/daemon/internal/sorted"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

// masterView is what the master reads of the store, mirrored in memory: listed once when a
// term starts, then kept current by one watch, so that a pass reads no more of the store than
// what changed.
type masterView struct {
	mirror       *store.Mirror
	applied      *store.Table[AppliedRecord]
	placements   *store.Table[Placement]
	status       *store.Table[PodStatusRecord]
	nodes        *store.Table[NodeRecord]
	known        *store.Table[NodeRecord]
	cordons      *store.Table[CordonRecord]
	services     *store.Table[reconcile.ServiceState]
	podCIDRs     *store.Table[netip.Prefix]
	deployments  *store.Table[DeploymentRecord]
	jobs         *store.Table[reconcile.JobStatus]
	cronJobs     *store.Table[reconcile.CronJobStatus]
	daemonSets   *store.Table[reconcile.DaemonSetStatus]
	statefulSets *store.Table[reconcile.StatefulSetStatus]
	autoscalers  *store.Table[reconcile.HPAStatus]
	deletions    *store.Table[DeletionRecord]
	metrics      *store.Table[NodeMetrics]
	claims       *store.Table[reconcile.ClaimState]
	// pods are the placements and their status as reconcile sees them, kept up to date change
	// by change, so that a pass copies them instead of joining two tables of every pod.
	pods *podIndex

	// reseal holds the nodes whose published certificate changed (appeared, or another one):
	// the pass seals their pods' Secrets again to its key (Master.resealOps).
	reseal *nodeSet
	// stopped holds the status keys of the terminating pods their nodes stopped: the pass
	// deletes their placements and status (Master.stoppedOps).
	stopped *keySet
	// keyring is the sealed keyring as stored.
	keyring *store.Table[json.RawMessage]
}

// newMasterView mirrors what the master reads. poke is called (with the mirror's lock held) on
// every change that is worth a pass: the applied commit, placements, pod status, cordons, and
// what the controllers use of a node record (its presence, labels, addresses, allocatable
// resources, schedulability, taints and the node ports it serves) — not a new heartbeat alone.
func newMasterView(c *store.Client, poke func()) *masterView {
	mir := store.NewMirror(c, prefix)
	pods := newPodIndex()
	appliedChange := func(string, *AppliedRecord, *AppliedRecord) { poke() }
	nodeChange := func(_ string, old, new *NodeRecord) {
		if old == nil || new == nil || nodeFacts(*old) != nodeFacts(*new) {
			poke()
		}
	}
	reseal := &nodeSet{}
	stopped := &keySet{}
	return &masterView{
		reseal:  reseal,
		stopped: stopped,
		mirror:  mir,
		applied: store.Track(mir, appliedKey, appliedChange),
		placements: store.TrackAll(mir, placementPrefix, func(key string, old, new *Placement) {
			pods.placed(key, old, new)
			poke()
		}),
		status: store.TrackAll(mir, statusPrefix, func(key string, old, new *PodStatusRecord) {
			pods.reported(key, old, new)
			stopped.set(key, new != nil && new.Stopped)
			poke()
		}),
		pods:  pods,
		nodes: store.Track(mir, nodesPrefix, nodeChange),
		known: store.TrackAll(mir, knownPrefix, func(key string, old, new *NodeRecord) {
			if new != nil && new.Certificate != "" && (old == nil || old.Certificate != new.Certificate) {
				reseal.add(strings.TrimPrefix(key, knownPrefix))
			}
			poke()
		}),
		cordons:      store.Track(mir, cordonPrefix, func(string, *CordonRecord, *CordonRecord) { poke() }),
		services:     store.Track[reconcile.ServiceState](mir, servicesPrefix, nil),
		podCIDRs:     store.Track[netip.Prefix](mir, podCIDRsPrefix, nil),
		deployments:  store.Track[DeploymentRecord](mir, deploymentsPrefix, nil),
		jobs:         store.Track[reconcile.JobStatus](mir, jobsPrefix, nil),
		cronJobs:     store.Track[reconcile.CronJobStatus](mir, cronJobsPrefix, nil),
		daemonSets:   store.Track[reconcile.DaemonSetStatus](mir, daemonSetsPrefix, nil),
		statefulSets: store.Track[reconcile.StatefulSetStatus](mir, statefulSetsPrefix, nil),
		autoscalers:  store.Track[reconcile.HPAStatus](mir, autoscalersPrefix, nil),
		deletions:    store.Track(mir, deletionsPrefix, func(string, *DeletionRecord, *DeletionRecord) { poke() }),
		metrics:      store.Track[NodeMetrics](mir, metricsPrefix, nil),
		claims:       store.Track[reconcile.ClaimState](mir, claimsPrefix, nil),
		keyring:      store.Track[json.RawMessage](mir, keyringKey, nil),
	}
}

// nodeSet is a set of node names, safe for concurrent use.
type nodeSet struct {
	mu    sync.Mutex
	nodes map[string]bool
}

func (s *nodeSet) add(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes == nil {
		s.nodes = map[string]bool{}
	}
	s.nodes[node] = true
}

// take returns the nodes added since the last take.
func (s *nodeSet) take() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.nodes
	s.nodes = nil
	return out
}

// nodeFacts is what the controllers use of a node record.
func nodeFacts(n NodeRecord) string {
	return fmt.Sprint(n.Labels, n.Allocatable, n.Unschedulable, n.Addresses, n.Taints, n.NodePorts, n.ReservedPorts)
}

// observed is the pods, the registered nodes and the known nodes of the view as reconcile sees
// them (State.Pods, Nodes and Known).
func (m *Master) observed() reconcile.State {
	nodes := m.view.nodes.List()
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
	var rnodes []reconcile.Node
	for _, n := range nodes {
		rnodes = append(rnodes, reconcileNode(n.Value, cordoned[n.Value.Name], draining[n.Value.Name]))
	}
	return reconcile.State{Pods: m.view.pods.list(), Nodes: rnodes, Known: known}
}

// reconcileNode is the planner's view of a registered node. A node opens LoadBalancer ports on
// its first address when it serves node ports (--node-interface).
func reconcileNode(n NodeRecord, cordoned, draining bool) reconcile.Node {
	r := reconcile.Node{Name: n.Name, Ready: true, Unschedulable: n.Unschedulable || cordoned, Draining: draining,
		Labels: n.Labels, Taints: ReconcileTaints(n.Taints), Allocatable: reconcile.Resources(n.Allocatable), ReservedPorts: n.ReservedPorts}
	if n.NodePorts && len(n.Addresses) > 0 {
		if ip, err := netip.ParseAddr(n.Addresses[0]); err == nil {
			r.LoadBalancerAddr = ip
		}
	}
	return r
}

// placement returns the placement of the pod uid.
func (v *masterView) placement(uid string) (Placement, bool) {
	key, ok := v.pods.key(uid)
	if !ok {
		return Placement{}, false
	}
	kv, ok := v.placements.Get(key)
	return kv.Value, ok
}

// podIndex joins placements and pod status into reconcile's pods as each changes: by
// placement key, sorted (the order of the placements table). A placement's status is the record
// its node reports under the same node and UID (statusKey). The master's mirror calls placed and
// reported for every change, with its lock held.
type podIndex struct {
	mu     sync.Mutex
	pods   sorted.Map[indexedPod]     // by placement key
	keys   map[string]string          // pod UID -> placement key
	status map[string]PodStatusRecord // by status key
}

type indexedPod struct {
	pl  Placement
	pod reconcile.Pod
}

func newPodIndex() *podIndex {
	return &podIndex{keys: map[string]string{}, status: map[string]PodStatusRecord{}}
}

// placed records a change of the placement under key: old is nil for a new one, new nil for a
// deleted one.
func (x *podIndex) placed(key string, _, new *Placement) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if new == nil {
		if p, ok := x.pods.Get(key); ok {
			if uid := p.pl.Spec.UID; x.keys[uid] == key {
				delete(x.keys, uid)
			}
			x.pods.Delete(key)
		}
		return
	}
	x.pods.Set(key, indexedPod{pl: *new, pod: x.podOf(*new)})
	x.keys[new.Spec.UID] = key
}

// reported records a change of the status record under key.
func (x *podIndex) reported(key string, old, new *PodStatusRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var uid string
	if new != nil {
		uid = new.UID
		x.status[key] = *new
	} else {
		if old != nil {
			uid = old.UID
		}
		delete(x.status, key)
	}
	if pk, ok := x.keys[uid]; ok {
		x.pods.Update(pk, func(p *indexedPod) { p.pod = x.podOf(p.pl) })
	}
}

// podOf is a placement and the status its node reported, as reconcile sees them.
func (x *podIndex) podOf(pl Placement) reconcile.Pod {
	st, ok := x.status[statusKey(nodeOrPending(pl.Node), pl.Spec.UID)]
	return podOf(pl, st, ok)
}

// list returns the pods, in the order of their placement keys.
func (x *podIndex) list() []reconcile.Pod {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]reconcile.Pod, 0, x.pods.Len())
	for _, p := range x.pods.All() {
		out = append(out, p.pod)
	}
	return out
}

// withSecrets returns the keys of the placements that hold Secrets, in plain text or sealed,
// and are not terminating: those on the given nodes, or all of them (the pending ones too).
func (x *podIndex) withSecrets(nodes map[string]bool, all bool) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for key, p := range x.pods.All() {
		pl := &p.pl
		if pl.Terminating || pl.Spec.Secrets == nil && pl.SealedSecrets == nil {
			continue
		}
		if all || nodes[pl.Node] {
			out = append(out, key)
		}
	}
	return out
}

// key returns the placement key of the pod uid.
func (x *podIndex) key(uid string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k, ok := x.keys[uid]
	return k, ok
}

// podOf is a placement and the status its node reported (when reported), as reconcile sees
// them.
func podOf(pl Placement, st PodStatusRecord, reported bool) reconcile.Pod {
	p := reconcile.Pod{UID: pl.Spec.UID, Owner: pl.Owner, TemplateHash: pl.TemplateHash, Spec: pl.Spec.Pod,
		Node: pl.Node, Commit: pl.Commit, Created: pl.Created, Terminating: pl.Terminating, Phase: manifests.PodPending}
	if pl.Spec.Pod != nil {
		p.Namespace, p.Name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
	}
	if pl.Node == "" {
		p.Reason, p.Message = "Unschedulable", pl.Reason
	}
	if pl.Terminating {
		p.DeleteReason = pl.Reason
	}
	if reported {
		if strings.HasPrefix(pl.Owner, "Job/") {
			// A Job's pod failure policy reads exit codes and conditions; other pods need
			// no copy of their status.
			status := st.Status
			p.Status = &status
		}
		p.Phase, p.Ready, p.ReadySince, p.IP = st.Status.Phase, PodReady(st.Status), st.ReadySince, st.Status.PodIP
		p.Reason, p.Message = st.Status.Reason, st.Status.Message
		for _, cs := range st.Status.ContainerStatuses {
			p.Restarts += cs.RestartCount
		}
	}
	return p
}

// podMetrics is the pods' usage as their nodes last measured it, by pod UID, for the
// autoscalers.
func (v *masterView) podMetrics() map[string]reconcile.PodUsage {
	out := map[string]reconcile.PodUsage{}
	for _, kv := range v.metrics.List() {
		for _, pm := range kv.Value.Pods {
			u := reconcile.PodUsage{Timestamp: kv.Value.Timestamp}
			for _, c := range pm.Containers {
				u.MilliCPU += c.MilliCPU
				u.Memory += c.Memory
			}
			out[pm.UID] = u
		}
	}
	return out
}
