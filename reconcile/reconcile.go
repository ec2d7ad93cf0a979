package reconcile

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// Reconcile plans the actions that move the observed state s toward the
// desired state: Deployment scaling and rollouts, standalone pods, pruning,
// replacing the pods of lost nodes and scheduling every pod without a node.
// It is a pure function of s and the identifiers ids hands out: it reads no
// clock, starts no goroutine and does no I/O, and it does not modify s.
func Reconcile(s State, ids IDSource) Plan {
	p := newPlanner(s, ids)
	p.run()
	return p.plan
}

// nodeState is what the controllers need to know about a pod's node.
type nodeState struct {
	node  *Node
	ready bool // exists and Ready
	lost  bool // missing, or not ready for at least the grace
}

// newPod is a pod created in this plan; action is its index in
// plan.Actions, rewritten once the scheduler has placed it.
type newPod struct {
	pod    Pod
	action int
	req    *podRequest
}

type planner struct {
	s     State
	ids   IDSource
	grace time.Duration
	plan  Plan

	// nodeList is every node the plan knows of: the registered ones
	// (State.Nodes), then the lost ones (Plan.Lost), which are not ready.
	nodeList []Node
	nodes    map[string]*nodeState
	names    map[string]struct{} // "namespace/name" of every pod, existing or new
	deleted  map[string]struct{} // UIDs deleted by this plan
	created  []newPod
	claims   *claimSet
	classes  map[string]*manifests.StorageClass // by name, made when first asked
	// registeredSet holds the names of State.Nodes, made when first asked.
	registeredSet map[string]bool
}

func newPlanner(s State, ids IDSource) *planner {
	p := &planner{
		s:       s,
		ids:     ids,
		grace:   s.NodeLostGrace,
		nodes:   make(map[string]*nodeState, len(s.Nodes)),
		names:   make(map[string]struct{}, len(s.Pods)),
		deleted: make(map[string]struct{}),
	}
	if p.grace <= 0 {
		p.grace = DefaultNodeLostGrace
	}
	p.lostNodes()
	for i := range p.nodeList {
		n := &p.nodeList[i]
		ns := &nodeState{node: n, ready: n.Ready}
		if !n.Ready {
			since := s.Now.Sub(n.NotReadySince)
			if since >= p.grace {
				ns.lost = true
			} else {
				p.requeue(p.grace - since)
			}
		}
		p.nodes[n.Name] = ns
	}
	for i := range s.Pods {
		p.names[s.Pods[i].Namespace+"/"+s.Pods[i].Name] = struct{}{}
	}
	return p
}

func (p *planner) run() {
	var deployments []*manifests.Deployment
	var standalone []*manifests.Pod
	var jobs []*manifests.Job
	var cronJobs []*manifests.CronJob
	var daemonSets []*manifests.DaemonSet
	var statefulSets []*manifests.StatefulSet
	var hpas []*manifests.HorizontalPodAutoscaler
	for _, o := range p.s.Objects {
		switch o := o.(type) {
		case *manifests.Deployment:
			deployments = append(deployments, o)
		case *manifests.Job:
			jobs = append(jobs, o)
		case *manifests.CronJob:
			cronJobs = append(cronJobs, o)
		case *manifests.DaemonSet:
			daemonSets = append(daemonSets, o)
		case *manifests.StatefulSet:
			statefulSets = append(statefulSets, o)
		case *manifests.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *manifests.Pod:
			standalone = append(standalone, o)
		}
	}
	byKey := func(a, b *manifests.ObjectMeta) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	}
	slices.SortStableFunc(deployments, func(a, b *manifests.Deployment) int { return byKey(&a.ObjectMeta, &b.ObjectMeta) })
	slices.SortStableFunc(standalone, func(a, b *manifests.Pod) int { return byKey(&a.ObjectMeta, &b.ObjectMeta) })
	slices.SortStableFunc(jobs, func(a, b *manifests.Job) int { return byKey(&a.ObjectMeta, &b.ObjectMeta) })
	slices.SortStableFunc(cronJobs, func(a, b *manifests.CronJob) int { return byKey(&a.ObjectMeta, &b.ObjectMeta) })
	slices.SortStableFunc(daemonSets, func(a, b *manifests.DaemonSet) int { return byKey(&a.ObjectMeta, &b.ObjectMeta) })
	slices.SortStableFunc(statefulSets, func(a, b *manifests.StatefulSet) int { return byKey(&a.ObjectMeta, &b.ObjectMeta) })
	slices.SortStableFunc(hpas, func(a, b *manifests.HorizontalPodAutoscaler) int { return byKey(&a.ObjectMeta, &b.ObjectMeta) })

	// Group the pods by owner, in a deterministic order.
	owned := make(map[string][]*Pod)
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		owned[pod.Owner] = append(owned[pod.Owner], pod)
	}

	p.initClaims()
	p.evictTainted()
	p.drain()
	p.requestedDeletions()
	p.autoscale(hpas, deployments, statefulSets, owned)

	seen := make(map[string]bool, len(deployments))
	for _, d := range deployments {
		owner := DeploymentOwner(d.Namespace, d.Name)
		if seen[owner] {
			continue // duplicates are refused by validation; keep the first
		}
		seen[owner] = true
		p.deployment(d, owned[owner])
	}
	for _, j := range jobs {
		owner := JobOwner(j.Namespace, j.Name)
		if seen[owner] {
			continue
		}
		seen[owner] = true
		p.job(j, owned[owner], "")
	}
	p.cronJobs(cronJobs, owned, seen)
	for _, ds := range daemonSets {
		owner := DaemonSetOwner(ds.Namespace, ds.Name)
		if seen[owner] {
			continue
		}
		seen[owner] = true
		p.daemonSet(ds, owned[owner])
	}
	for _, set := range statefulSets {
		owner := StatefulSetOwner(set.Namespace, set.Name)
		if seen[owner] {
			continue
		}
		seen[owner] = true
		p.statefulSet(set, owned[owner])
	}
	p.orphanClaims(seen)
	p.standalone(standalone, owned[""])

	// Pods whose Deployment is gone (or whose owner Shoal does not know).
	var orphans []string
	for owner := range owned {
		if owner != "" && !seen[owner] {
			orphans = append(orphans, owner)
		}
	}
	slices.Sort(orphans)
	for _, owner := range orphans {
		for _, pod := range owned[owner] {
			switch {
			case p.nodeLost(pod):
				p.delete(pod, DeleteNodeLost, owner)
			case !pod.Terminating || pod.Node == "":
				p.delete(pod, DeletePruned, owner)
			}
		}
	}

	p.schedule()
	p.finishClaims()
	p.resolveReferences()
	p.podCIDRs()
	p.services()
}

// services plans the Services over the pods as observed.
func (p *planner) services() {
	if !p.s.ServiceCIDR.IsValid() {
		return
	}
	addrs := make([]PodAddr, 0, len(p.s.Pods))
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		ip, _ := netip.ParseAddr(pod.IP)
		addrs = append(addrs, PodAddr{Pod: pod.Spec, IP: ip, Node: pod.Node, Ready: pod.Ready, Terminating: pod.Terminating})
	}
	p.plan.Services = Services(p.s.Objects, addrs, p.s.Nodes, p.s.ServiceIPs, p.s.NodePorts, p.s.ServedLoadBalancers, p.s.ServiceCIDR)
}

// registered reports whether the node is in State.Nodes.
func (p *planner) registered(name string) bool {
	if p.registeredSet == nil {
		p.registeredSet = make(map[string]bool, len(p.s.Nodes))
		for i := range p.s.Nodes {
			p.registeredSet[p.s.Nodes[i].Name] = true
		}
	}
	return p.registeredSet[name]
}

// nodeGone reports whether the node was removed from the cluster: it is
// neither registered nor known (with a nil State.Known, not registered).
func (p *planner) nodeGone(name string) bool {
	return p.nodes[name] == nil || (!p.registered(name) && !p.s.Known[name])
}

// nodeLost reports whether the pod is bound to a node that is lost or no
// longer registered.
func (p *planner) nodeLost(pod *Pod) bool {
	if pod.Node == "" {
		return false
	}
	n := p.nodes[pod.Node]
	return n == nil || n.lost
}

// podReady reports whether the pod counts as ready: it says so and its node
// is ready (a node that stopped reporting cannot vouch for its pods).
func (p *planner) podReady(pod *Pod) bool {
	if !pod.Ready || pod.Terminating || pod.Node == "" {
		return false
	}
	n := p.nodes[pod.Node]
	return n != nil && n.ready
}

// podAvailable reports whether the pod has been ready for at least
// minReady. A zero ReadySince counts as long ago, as Kubernetes treats an
// unset transition time.
func (p *planner) podAvailable(pod *Pod, minReady time.Duration) bool {
	if !p.podReady(pod) {
		return false
	}
	if minReady <= 0 || pod.ReadySince.IsZero() {
		return true
	}
	left := minReady - p.s.Now.Sub(pod.ReadySince)
	if left > 0 {
		p.requeue(left)
		return false
	}
	return true
}

func (p *planner) requeue(d time.Duration) {
	if d > 0 && (p.plan.RequeueAfter == 0 || d < p.plan.RequeueAfter) {
		p.plan.RequeueAfter = d
	}
}

// isDeleted reports whether this plan already deletes the pod.
func (p *planner) isDeleted(pod *Pod) bool {
	_, ok := p.deleted[pod.UID]
	return ok
}

// delete appends a DeletePod for pod. object names the owner for events.
func (p *planner) delete(pod *Pod, reason, object string) {
	if _, ok := p.deleted[pod.UID]; ok {
		return
	}
	p.deleted[pod.UID] = struct{}{}
	// A StatefulSet's pod on a lost node is deleted only once the node
	// confirms it or is removed: until then it may still run, and its
	// ordinal must not run twice.
	force := pod.Node == "" || (p.nodeLost(pod) && (!isStatefulSetPod(pod) || p.nodeGone(pod.Node)))
	p.plan.Actions = append(p.plan.Actions, DeletePod{
		UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, Node: pod.Node, Reason: reason, Force: force,
	})
	if object == "" {
		object = "Pod/" + pod.Namespace + "/" + pod.Name
	}
	switch reason {
	case DeleteNodeLost:
		p.event(object, EventWarning, "NodeLost", "Deleted pod "+pod.Namespace+"/"+pod.Name+" (node "+pod.Node+" lost)")
	case DeletePruned:
		p.event(object, EventNormal, "Pruned", "Deleted pod "+pod.Namespace+"/"+pod.Name+" (removed from git)")
	case DeleteJobDeleted:
		p.event(object, EventNormal, "SuccessfulDelete", "Deleted pod "+pod.Namespace+"/"+pod.Name+" (its Job was deleted)")
	case DeleteSpecChanged:
		p.event(object, EventNormal, "Replacing", "Deleted pod "+pod.Namespace+"/"+pod.Name+" (spec changed in git)")
	case DeleteFailed:
		p.event(object, EventWarning, "PodFailed", "Deleted pod "+pod.Namespace+"/"+pod.Name+" (phase "+string(pod.Phase)+")")
	}
}

// create appends a CreatePod for pod (the scheduler fills in its node).
func (p *planner) create(pod Pod, req *podRequest) {
	p.names[pod.Namespace+"/"+pod.Name] = struct{}{}
	p.created = append(p.created, newPod{pod: pod, action: len(p.plan.Actions), req: req})
	p.plan.Actions = append(p.plan.Actions, CreatePod{Pod: pod})
}

// uniqueName asks ids for suffixes until build(suffix) names no pod in the
// namespace. After many collisions it gives up and appends a counter, which
// keeps the plan valid even with a broken IDSource.
func (p *planner) uniqueName(namespace string, build func(suffix string) string) string {
	var name string
	for range 100 {
		name = build(p.ids.Suffix())
		if _, ok := p.names[namespace+"/"+name]; !ok {
			return name
		}
	}
	base := name
	for i := 2; ; i++ {
		name = base + "-" + strconv.Itoa(i)
		if _, ok := p.names[namespace+"/"+name]; !ok {
			return name
		}
	}
}

func (p *planner) event(object, typ, reason, msg string) {
	p.plan.Events = append(p.plan.Events, Event{Object: object, Type: typ, Reason: reason, Message: msg})
}

// deletionOrder sorts pods so that the ones to delete first come first, as
// Kubernetes ranks a ReplicaSet's pods: not yet scheduled, then not running,
// then not ready, then ready for the shortest time, then most restarted,
// then most recently created.
func (p *planner) deletionOrder(pods []*Pod) {
	type ranked struct {
		pod                   *Pod
		bound, running, ready bool
	}
	rs := make([]ranked, len(pods))
	for i, pod := range pods {
		rs[i] = ranked{pod, pod.Node != "", pod.Phase == manifests.PodRunning, p.podReady(pod)}
	}
	less := func(a, b bool) int { // false sorts first
		switch {
		case a == b:
			return 0
		case !a:
			return -1
		}
		return 1
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if c := cmp.Or(less(a.bound, b.bound), less(a.running, b.running), less(a.ready, b.ready)); c != 0 {
			return c
		}
		if a.ready && b.ready {
			if c := b.pod.ReadySince.Compare(a.pod.ReadySince); c != 0 {
				return c
			}
		}
		return cmp.Or(
			cmp.Compare(b.pod.Restarts, a.pod.Restarts),
			b.pod.Created.Compare(a.pod.Created),
			strings.Compare(a.pod.UID, b.pod.UID),
		)
	})
	for i := range rs {
		pods[i] = rs[i].pod
	}
}
