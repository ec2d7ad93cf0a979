package reconcile

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/manifests"
)

// Scheduler messages, in the words of kube-scheduler.
const (
	reasonNotReady      = "node(s) were not ready"
	reasonUnschedulable = "node(s) were unschedulable"
	reasonSelector      = "node(s) didn't match Pod's node selector"
	reasonCPU           = "Insufficient cpu"
	reasonMemory        = "Insufficient memory"
	msgNoNodes          = "no nodes available to schedule pods"
)

// podRequest is what the scheduler needs of a pod, computed once per
// template.
type podRequest struct {
	res      Resources
	selector map[string]string
	selKey   string // canonical form of selector, "" when empty
}

// requestOf computes a pod's requests as Kubernetes does: for each
// resource, the larger of the sum over the app containers and the largest
// init container. A container that sets only a limit requests its limit.
func requestOf(spec *manifests.PodSpec) *podRequest {
	var app, initMax Resources
	for i := range spec.Containers {
		r := containerRequest(&spec.Containers[i])
		app.MilliCPU += r.MilliCPU
		app.Memory += r.Memory
	}
	for i := range spec.InitContainers {
		r := containerRequest(&spec.InitContainers[i])
		initMax.MilliCPU = max(initMax.MilliCPU, r.MilliCPU)
		initMax.Memory = max(initMax.Memory, r.Memory)
	}
	req := &podRequest{
		res:      Resources{MilliCPU: max(app.MilliCPU, initMax.MilliCPU), Memory: max(app.Memory, initMax.Memory)},
		selector: spec.NodeSelector,
	}
	if len(spec.NodeSelector) > 0 {
		keys := slices.Sorted(maps.Keys(spec.NodeSelector))
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(spec.NodeSelector[k])
			b.WriteByte(0)
		}
		req.selKey = b.String()
	}
	return req
}

// Requests returns the CPU and memory a pod with this spec asks for, as
// the scheduler counts them.
func Requests(spec *manifests.PodSpec) Resources { return requestOf(spec).res }

func containerRequest(c *manifests.Container) Resources {
	get := func(name manifests.ResourceName) (manifests.Quantity, bool) {
		if q, ok := c.Resources.Requests[name]; ok {
			return q, true
		}
		q, ok := c.Resources.Limits[name]
		return q, ok
	}
	var r Resources
	if q, ok := get(manifests.ResourceCPU); ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := get(manifests.ResourceMemory); ok {
		r.Memory = q.Value()
	}
	return r
}

// schedNode is a node as the scheduler sees it during one plan.
type schedNode struct {
	name   string
	labels map[string]string
	// fit is false for nodes that take no new pod (not ready or cordoned);
	// reason says why.
	fit    bool
	reason string
	alloc  Resources
	free   Resources // alloc minus the requests of the pods bound to it
}

type scheduler struct {
	nodes []schedNode // sorted by name
	// Nodes refused for reasons that do not depend on the pod.
	fixed map[string]int
	// owners counts, per owner, the pods on each node (indexed as nodes).
	owners map[string][]int32
	// selectors caches which nodes match a node selector.
	selectors map[string][]bool
	index     map[string]int
}

// schedule places every pod without a node: existing pending pods first
// (oldest first), then the pods this plan creates, in creation order. For
// each pod it filters the nodes that are ready, not cordoned, match its
// nodeSelector and have room for its requests, then prefers the node with
// the fewest pods of the same owner, then the least requested one, then the
// first by name.
func (p *planner) schedule() {
	var pending []*Pod
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if pod.Node != "" || pod.Terminating {
			continue
		}
		if _, gone := p.deleted[pod.UID]; gone {
			continue
		}
		pending = append(pending, pod)
	}
	if len(pending) == 0 && len(p.created) == 0 {
		return
	}
	slices.SortStableFunc(pending, func(a, b *Pod) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	sc := p.newScheduler()
	for _, pod := range pending {
		if pod.Spec == nil {
			continue
		}
		node, why := sc.place(pod.Owner, requestOf(&pod.Spec.Spec))
		if node != "" {
			p.plan.Actions = append(p.plan.Actions, BindPod{UID: pod.UID, Node: node})
			continue
		}
		p.unschedulable(pod, why)
	}
	for i := range p.created {
		c := &p.created[i]
		node, why := sc.place(c.pod.Owner, c.req)
		if node == "" {
			p.unschedulable(&c.pod, why)
			continue
		}
		c.pod.Node = node
		p.plan.Actions[c.action] = CreatePod{Pod: c.pod}
	}
}

func (p *planner) unschedulable(pod *Pod, why string) {
	p.plan.Pending = append(p.plan.Pending, PendingPod{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, Reason: why})
	if why != pod.Message {
		p.event("Pod/"+pod.Namespace+"/"+pod.Name, EventWarning, "FailedScheduling", why)
	}
}

func (p *planner) newScheduler() *scheduler {
	sc := &scheduler{
		nodes:     make([]schedNode, len(p.s.Nodes)),
		fixed:     make(map[string]int),
		owners:    make(map[string][]int32),
		selectors: make(map[string][]bool),
		index:     make(map[string]int, len(p.s.Nodes)),
	}
	for i := range p.s.Nodes {
		n := &p.s.Nodes[i]
		sc.nodes[i] = schedNode{name: n.Name, labels: n.Labels, fit: true, alloc: n.Allocatable, free: n.Allocatable}
	}
	slices.SortStableFunc(sc.nodes, func(a, b schedNode) int { return strings.Compare(a.name, b.name) })
	for i := range sc.nodes {
		n := &sc.nodes[i]
		if _, dup := sc.index[n.name]; dup {
			n.fit, n.reason = false, "" // a duplicate entry is never chosen
			continue
		}
		sc.index[n.name] = i
		ns := p.nodes[n.name]
		switch {
		case ns.node.Unschedulable:
			n.fit, n.reason = false, reasonUnschedulable
		case !ns.ready:
			n.fit, n.reason = false, reasonNotReady
		}
		if !n.fit {
			sc.fixed[n.reason]++
		}
	}
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if pod.Node == "" || pod.Phase == manifests.PodFailed || pod.Phase == manifests.PodSucceeded {
			continue
		}
		ni, ok := sc.index[pod.Node]
		if !ok {
			continue
		}
		if pod.Spec != nil {
			r := requestOf(&pod.Spec.Spec).res
			sc.nodes[ni].free.MilliCPU -= r.MilliCPU
			sc.nodes[ni].free.Memory -= r.Memory
		}
		if pod.Owner != "" && !pod.Terminating {
			if _, gone := p.deleted[pod.UID]; !gone {
				sc.ownerCounts(pod.Owner)[ni]++
			}
		}
	}
	return sc
}

func (sc *scheduler) ownerCounts(owner string) []int32 {
	c := sc.owners[owner]
	if c == nil {
		c = make([]int32, len(sc.nodes))
		sc.owners[owner] = c
	}
	return c
}

func (sc *scheduler) selectorMask(req *podRequest) []bool {
	if req.selKey == "" {
		return nil
	}
	if m, ok := sc.selectors[req.selKey]; ok {
		return m
	}
	m := make([]bool, len(sc.nodes))
	for i := range sc.nodes {
		m[i] = matchesAll(req.selector, sc.nodes[i].labels)
	}
	sc.selectors[req.selKey] = m
	return m
}

func matchesAll(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// place chooses a node for a pod of owner with the requests req and
// reserves its resources there. It returns the node, or "" and why no node
// fits.
func (sc *scheduler) place(owner string, req *podRequest) (string, string) {
	mask := sc.selectorMask(req)
	var counts []int32
	if owner != "" {
		counts = sc.ownerCounts(owner)
	}
	cpu, mem := req.res.MilliCPU, req.res.Memory
	best, bestCount, bestScore := -1, int32(0), int64(0)
	selectorMiss, cpuShort, memShort := 0, 0, 0
	for i := range sc.nodes {
		n := &sc.nodes[i]
		if !n.fit {
			continue
		}
		if mask != nil && !mask[i] {
			selectorMiss++
			continue
		}
		noCPU, noMem := cpu > n.free.MilliCPU, mem > n.free.Memory
		if noCPU || noMem {
			if noCPU {
				cpuShort++
			}
			if noMem {
				memShort++
			}
			continue
		}
		var c int32
		if counts != nil {
			c = counts[i]
		}
		if best >= 0 && c > bestCount {
			continue
		}
		score := leastRequested(n.free.MilliCPU-cpu, n.alloc.MilliCPU) + leastRequested(n.free.Memory-mem, n.alloc.Memory)
		if best < 0 || c < bestCount || score > bestScore {
			best, bestCount, bestScore = i, c, score
		}
	}
	if best < 0 {
		return "", sc.explain(selectorMiss, cpuShort, memShort)
	}
	n := &sc.nodes[best]
	n.free.MilliCPU -= cpu
	n.free.Memory -= mem
	if counts != nil {
		counts[best]++
	}
	return n.name, ""
}

// leastRequested scores the share of a resource left free, 0 to 100, as
// kube-scheduler's LeastAllocated strategy does.
func leastRequested(free, alloc int64) int64 {
	if alloc <= 0 {
		return 0
	}
	return free * 100 / alloc
}

// explain renders kube-scheduler's message: "0/3 nodes are available: 1
// node(s) didn't match Pod's node selector, 2 Insufficient cpu."
func (sc *scheduler) explain(selectorMiss, cpuShort, memShort int) string {
	if len(sc.index) == 0 {
		return msgNoNodes
	}
	var parts []string
	add := func(n int, reason string) {
		if n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+reason)
		}
	}
	for _, r := range []string{reasonNotReady, reasonUnschedulable} {
		add(sc.fixed[r], r)
	}
	add(selectorMiss, reasonSelector)
	add(cpuShort, reasonCPU)
	add(memShort, reasonMemory)
	slices.Sort(parts)
	return "0/" + strconv.Itoa(len(sc.index)) + " nodes are available: " + strings.Join(parts, ", ") + "."
}
