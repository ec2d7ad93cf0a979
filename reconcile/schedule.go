package reconcile

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/manifests"
)

// Reasons a node does not take a pod, in the order the filters run (as
// kube-scheduler's plugins run: NodeUnschedulable, TaintToleration,
// NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread,
// InterPodAffinity). Insufficient resources are counted apart, since a
// node may lack several.
const (
	rFits uint8 = iota
	rSkip       // a duplicate node entry: never chosen, not counted
	rNotReady
	rUnschedulable
	rTaint // the message names the taint
	rNodeAffinity
	rPorts
	rVolumeConflict
	rVolumeSpace
	rSpreadLabel
	rSpread
	rPodAffinity
	rPodAnti
	rExistingAnti
	nReasons
)

// Scheduler messages, in the words of kube-scheduler.
var reasonText = [nReasons]string{
	rNotReady:       "node(s) were not ready",
	rUnschedulable:  "node(s) were unschedulable",
	rNodeAffinity:   "node(s) didn't match Pod's node affinity/selector",
	rPorts:          "node(s) didn't have free ports for the requested pod ports",
	rVolumeConflict: "node(s) had volume node affinity conflict",
	rVolumeSpace:    "node(s) did not have enough free storage",
	rSpreadLabel:    "node(s) didn't match pod topology spread constraints (missing required label)",
	rSpread:         "node(s) didn't match pod topology spread constraints",
	rPodAffinity:    "node(s) didn't match pod affinity rules",
	rPodAnti:        "node(s) didn't match pod anti-affinity rules",
	rExistingAnti:   "node(s) didn't satisfy existing pods anti-affinity rules",
}

const (
	reasonCPU     = "Insufficient cpu"
	reasonMemory  = "Insufficient memory"
	reasonStorage = "Insufficient ephemeral-storage"
	msgNoNodes    = "no nodes available to schedule pods"
)

// Score weights of kube-scheduler's default profile, and its highest
// normalised score.
const (
	weightTaintToleration  = 3
	weightNodeAffinity     = 2
	weightInterPodAffinity = 2
	weightTopologySpread   = 2
	maxScore               = 100
)

// schedNode is a node as the scheduler sees it during one plan.
type schedNode struct {
	name   string
	labels map[string]string // with kubernetes.io/hostname
	taints []Taint
	// dup marks a second entry of a name: never chosen. lost nodes are
	// gone (not counted as topology domains); the others are not ready,
	// cordoned or draining as the node says.
	dup, lost, notReady, cordoned, draining bool
	alloc                                   Resources
	free                                    Resources // alloc minus the requests of the pods bound to it
	ports                                   []hostPort
}

// staticFit is how the nodes fit the pods of one node selection
// (nodeSelector, node affinity, tolerations): what does not change while
// pods are placed.
type staticFit struct {
	reason   []uint8        // per node: rFits, or the first filter that refuses it
	taintMsg map[int]string // per node refused by rTaint: which taint
	// affinityOK and taintsOK are per node: it matches the pod's node
	// selection; it has no taint the pod does not tolerate (for spreading's
	// node inclusion policies).
	affinityOK, taintsOK []bool
	prefer               []int64 // preferred node affinity per node; nil without preferred terms
	avoid                []int32 // untolerated PreferNoSchedule taints per node; nil when none
}

type scheduler struct {
	nodes []schedNode // sorted by name
	index map[string]int
	// owners counts, per owner, the pods on each node (indexed as nodes).
	owners map[string][]int32
	fits   map[string]*staticFit

	// Affinity and spreading: the pods that count, the topology domains,
	// and counts kept current as pods are placed.
	tracked      []trackedPod
	topologies   map[string]*topology
	matches      map[string]*matchCount
	matchList    []*matchCount
	held         map[string]*heldTerm
	heldList     []*heldTerm
	podCounts    map[string]*podCount
	podCountList []*podCount
	nsLabels     map[string]map[string]string

	// claims are the plan's PersistentVolumeClaims.
	claims *claimSet

	feasible []int   // scratch
	scores   []int64 // scratch
}

// schedule places every pod without a node: existing pending pods first
// (oldest first), then the pods this plan creates, in creation order. For
// each pod it keeps the nodes that pass kube-scheduler's filters (ready,
// not cordoned unless tolerated, taints tolerated, node affinity and
// nodeSelector, free host ports, room for the requests, topology spread,
// inter-pod affinity), then prefers the node with the highest sum of
// kube-scheduler's weighted scores (taints, node affinity, inter-pod
// affinity, topology spread), then the one with the fewest pods of the same
// owner, then the least requested one, then the first by name.
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
	memo := make(map[string]*podRequest)
	sc := p.newScheduler(memo)
	for _, pod := range pending {
		if pod.Spec == nil {
			continue
		}
		req := requestOfPod(pod, memo)
		node, why := sc.place(pod.Owner, req)
		if node != "" {
			p.placedClaims(sc, req, node)
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
		p.placedClaims(sc, c.req, node)
		c.pod.Node = node
		p.plan.Actions[c.action] = CreatePod{Pod: c.pod}
	}
}

// requestOfPod compiles a stored pod's request; the pods of one Deployment
// revision share theirs (a StatefulSet's pods differ in labels and claims).
func requestOfPod(pod *Pod, memo map[string]*podRequest) *podRequest {
	if pod.Owner == "" || pod.TemplateHash == "" || isStatefulSetPod(pod) {
		return requestOf(pod.Namespace, pod.Spec.Labels, &pod.Spec.Spec)
	}
	key := pod.Owner + "\x00" + pod.TemplateHash
	if r, ok := memo[key]; ok {
		return r
	}
	r := requestOf(pod.Namespace, pod.Spec.Labels, &pod.Spec.Spec)
	memo[key] = r
	return r
}

// placedClaims binds the claims of a pod placed on node, which take their
// storage there.
func (p *planner) placedClaims(sc *scheduler, req *podRequest, node string) {
	if len(req.claims) == 0 {
		return
	}
	took := p.bindClaims(req.namespace, req.claims, node)
	n := &sc.nodes[sc.index[node]]
	n.free.EphemeralStorage -= took
}

func (p *planner) unschedulable(pod *Pod, why string) {
	p.plan.Pending = append(p.plan.Pending, PendingPod{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, Reason: why})
	if why != pod.Message {
		p.event("Pod/"+pod.Namespace+"/"+pod.Name, EventWarning, "FailedScheduling", why)
	}
}

func (p *planner) newScheduler(memo map[string]*podRequest) *scheduler {
	sc := &scheduler{
		nodes:      make([]schedNode, len(p.nodeList)),
		index:      make(map[string]int, len(p.nodeList)),
		owners:     make(map[string][]int32),
		fits:       make(map[string]*staticFit),
		topologies: make(map[string]*topology),
		matches:    make(map[string]*matchCount),
		held:       make(map[string]*heldTerm),
		podCounts:  make(map[string]*podCount),
		nsLabels:   make(map[string]map[string]string),
		claims:     p.claims,
	}
	for i := range p.nodeList {
		n := &p.nodeList[i]
		labels := n.Labels
		if _, ok := labels[LabelHostname]; !ok {
			labels = maps.Clone(labels)
			if labels == nil {
				labels = make(map[string]string, 1)
			}
			labels[LabelHostname] = n.Name
		}
		sc.nodes[i] = schedNode{name: n.Name, labels: labels, taints: n.Taints, alloc: n.Allocatable, free: n.Allocatable}
	}
	slices.SortStableFunc(sc.nodes, func(a, b schedNode) int { return strings.Compare(a.name, b.name) })
	bound := p.claims.boundStorage()
	for i := range sc.nodes {
		n := &sc.nodes[i]
		if _, dup := sc.index[n.name]; dup {
			n.dup = true // a duplicate entry is never chosen
			continue
		}
		sc.index[n.name] = i
		n.free.EphemeralStorage -= bound[n.name]
		ns := p.nodes[n.name]
		n.lost, n.notReady = ns.lost, !ns.ready
		n.cordoned, n.draining = ns.node.Unschedulable || ns.node.Draining, ns.node.Draining
	}
	for _, o := range p.s.Objects {
		if ns, ok := o.(*manifests.Namespace); ok {
			l := maps.Clone(ns.Labels)
			if l == nil {
				l = make(map[string]string, 1)
			}
			l["kubernetes.io/metadata.name"] = ns.Name
			sc.nsLabels[ns.Name] = l
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
		_, gone := p.deleted[pod.UID]
		counted := !pod.Terminating && !gone
		if pod.Owner != "" && counted {
			sc.ownerCounts(pod.Owner)[ni]++
		}
		if pod.Spec == nil {
			continue
		}
		// A terminating pod keeps its resources and host ports until its
		// node has stopped it; it no longer counts for affinity or spreading.
		req := requestOfPod(pod, memo)
		n := &sc.nodes[ni]
		n.free = n.free.sub(req.res)
		n.ports = append(n.ports, req.ports...)
		if counted && !n.lost {
			sc.track(req.namespace, req.labels, req.affinity, ni)
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

// track counts a pod bound or placed on node for affinity and spreading.
func (sc *scheduler) track(namespace string, labels map[string]string, pa *podAffinity, node int) {
	sc.tracked = append(sc.tracked, trackedPod{namespace: namespace, labels: labels, node: node})
	tp := &sc.tracked[len(sc.tracked)-1]
	for _, mc := range sc.matchList {
		sc.countMatch(mc, tp)
	}
	for _, pc := range sc.podCountList {
		pc.count(tp)
	}
	if pa != nil {
		sc.hold(pa, node)
	}
}

var (
	unschedulableTaint = manifests.Taint{Key: TaintUnschedulable, Effect: manifests.TaintEffectNoSchedule}
	notReadyTaint      = manifests.Taint{Key: TaintNotReady, Effect: manifests.TaintEffectNoExecute}
)

// staticFor returns how the nodes fit a pod's node selection, computed
// once per selection.
func (sc *scheduler) staticFor(req *podRequest) *staticFit {
	if f, ok := sc.fits[req.fitKey]; ok {
		return f
	}
	sel := &req.nodes
	f := &staticFit{
		reason: make([]uint8, len(sc.nodes)), affinityOK: make([]bool, len(sc.nodes)), taintsOK: make([]bool, len(sc.nodes)),
	}
	if len(sel.preferred) > 0 {
		f.prefer = make([]int64, len(sc.nodes))
	}
	tolUnschedulable := toleration(sel.tolerations, &unschedulableTaint) != nil
	tolNotReady := toleration(sel.tolerations, &notReadyTaint) != nil
	for i := range sc.nodes {
		n := &sc.nodes[i]
		if n.dup {
			f.reason[i] = rSkip
			continue
		}
		f.affinityOK[i] = sel.matchesNode(n.name, n.labels)
		untolerated := untoleratedTaint(n.taints, sel.tolerations)
		f.taintsOK[i] = untolerated == nil && (!n.cordoned || tolUnschedulable) && (!n.notReady || tolNotReady)
		switch {
		case n.notReady:
			f.reason[i] = rNotReady
		case n.cordoned && (n.draining || !tolUnschedulable):
			f.reason[i] = rUnschedulable
		case untolerated != nil:
			f.reason[i] = rTaint
			if f.taintMsg == nil {
				f.taintMsg = make(map[int]string)
			}
			f.taintMsg[i] = taintReason(untolerated)
		case !f.affinityOK[i]:
			f.reason[i] = rNodeAffinity
		}
		if f.prefer != nil {
			f.prefer[i] = sel.preferScore(n.name, n.labels)
		}
		if c := avoidCount(n.taints, sel.tolerations); c > 0 {
			if f.avoid == nil {
				f.avoid = make([]int32, len(sc.nodes))
			}
			f.avoid[i] = c
		}
	}
	sc.fits[req.fitKey] = f
	return f
}

// placement is one pod's pass over the nodes.
type placement struct {
	fails      [nReasons]int
	taintFails map[string]int
	short      [3]int // cpu, memory, ephemeral-storage
}

// place chooses a node for a pod of owner with the request req and
// reserves its resources and ports there. It returns the node, or "" and
// why no node fits.
func (sc *scheduler) place(owner string, req *podRequest) (string, string) {
	if len(req.claims) > 0 && len(sc.index) > 0 {
		if why := sc.claims.refusal(req.namespace, req.claims); why != "" {
			return "", "0/" + strconv.Itoa(len(sc.index)) + " nodes are available: " + why + "."
		}
	}
	fit := sc.staticFor(req)
	spread := sc.spreadFor(req, fit)
	aff := sc.affinityFor(req)
	var counts []int32
	if owner != "" {
		counts = sc.ownerCounts(owner)
	}
	scoring := fit.prefer != nil || fit.avoid != nil || spread != nil && len(spread.soft) > 0 || aff != nil && len(aff.scores) > 0
	res := req.res
	var pl placement
	best, bestCount, bestScore := -1, int32(0), int64(0)
	feasible := sc.feasible[:0]
	for i := range sc.nodes {
		n := &sc.nodes[i]
		if r := fit.reason[i]; r != rFits {
			if r == rTaint {
				if pl.taintFails == nil {
					pl.taintFails = make(map[string]int)
				}
				pl.taintFails[fit.taintMsg[i]]++
			} else {
				pl.fails[r]++
			}
			continue
		}
		if len(req.ports) > 0 && portsConflict(n.ports, req.ports) {
			pl.fails[rPorts]++
			continue
		}
		noCPU, noMem := res.MilliCPU > n.free.MilliCPU, res.Memory > n.free.Memory
		noStorage := n.alloc.EphemeralStorage > 0 && res.EphemeralStorage > n.free.EphemeralStorage
		if noCPU || noMem || noStorage {
			for k, short := range [3]bool{noCPU, noMem, noStorage} {
				if short {
					pl.short[k]++
				}
			}
			continue
		}
		if len(req.claims) > 0 {
			if r := sc.claims.fit(req.namespace, req.claims, n, n.free.EphemeralStorage-res.EphemeralStorage); r != rFits {
				pl.fails[r]++
				continue
			}
		}
		if spread != nil {
			if r := spread.filter(i); r != rFits {
				pl.fails[r]++
				continue
			}
		}
		if aff != nil {
			if r := aff.filter(i); r != rFits {
				pl.fails[r]++
				continue
			}
		}
		if scoring {
			feasible = append(feasible, i)
			continue
		}
		var c int32
		if counts != nil {
			c = counts[i]
		}
		if best >= 0 && c > bestCount {
			continue
		}
		score := n.leastRequested(res)
		if best < 0 || c < bestCount || score > bestScore {
			best, bestCount, bestScore = i, c, score
		}
	}
	sc.feasible = feasible
	if scoring && len(feasible) > 0 {
		best = sc.choose(feasible, counts, req, fit, spread, aff)
	}
	if best < 0 {
		return "", sc.explain(&pl)
	}
	n := &sc.nodes[best]
	n.free = n.free.sub(res)
	n.ports = append(n.ports, req.ports...)
	if counts != nil {
		counts[best]++
	}
	sc.track(req.namespace, req.labels, req.affinity, best)
	return n.name, ""
}

// choose ranks the feasible nodes: the sum of kube-scheduler's weighted,
// normalised scores first, then the fewest pods of the owner, then the
// least requested, then the first by name.
func (sc *scheduler) choose(feasible []int, counts []int32, req *podRequest, fit *staticFit, spread *spreadState, aff *affinityState) int {
	total := slices.Grow(sc.scores[:0], len(feasible))[:len(feasible)]
	clear(total)
	if fit.avoid != nil {
		var top int64
		for _, i := range feasible {
			top = max(top, int64(fit.avoid[i]))
		}
		for fi, i := range feasible {
			if top > 0 {
				total[fi] += weightTaintToleration * (maxScore - maxScore*int64(fit.avoid[i])/top)
			}
		}
	}
	if fit.prefer != nil {
		var top int64
		for _, i := range feasible {
			top = max(top, fit.prefer[i])
		}
		for fi, i := range feasible {
			if top > 0 {
				total[fi] += weightNodeAffinity * (maxScore * fit.prefer[i] / top)
			}
		}
	}
	if aff != nil && len(aff.scores) > 0 {
		raw := make([]int64, len(feasible))
		var lo, hi int64
		for fi, i := range feasible {
			raw[fi] = aff.raw(i)
			lo, hi = min(lo, raw[fi]), max(hi, raw[fi])
		}
		if hi > lo {
			for fi := range feasible {
				total[fi] += weightInterPodAffinity * int64(float64(maxScore)*float64(raw[fi]-lo)/float64(hi-lo))
			}
		}
	}
	if spread != nil && len(spread.soft) > 0 {
		out := make([]int64, len(feasible))
		spread.scores(sc, fit, feasible, out)
		for fi := range feasible {
			total[fi] += weightTopologySpread * out[fi]
		}
	}
	sc.scores = total
	best := -1
	var bestTotal, bestScore int64
	var bestCount int32
	for fi, i := range feasible {
		var c int32
		if counts != nil {
			c = counts[i]
		}
		score := sc.nodes[i].leastRequested(req.res)
		if best < 0 || total[fi] > bestTotal ||
			total[fi] == bestTotal && (c < bestCount || c == bestCount && score > bestScore) {
			best, bestTotal, bestCount, bestScore = i, total[fi], c, score
		}
	}
	return best
}

// leastRequested scores the node by the share of CPU and memory left free
// once res is placed, 0 to 100 each, as kube-scheduler's LeastAllocated
// strategy does.
func (n *schedNode) leastRequested(res Resources) int64 {
	return leastRequested(n.free.MilliCPU-res.MilliCPU, n.alloc.MilliCPU) + leastRequested(n.free.Memory-res.Memory, n.alloc.Memory)
}

func leastRequested(free, alloc int64) int64 {
	if alloc <= 0 {
		return 0
	}
	return free * 100 / alloc
}

// portsConflict reports whether any of want conflicts with the ports in use.
func portsConflict(used, want []hostPort) bool {
	for _, w := range want {
		for _, u := range used {
			if w.conflicts(u) {
				return true
			}
		}
	}
	return false
}

// explain renders kube-scheduler's message: "0/3 nodes are available: 1
// node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu."
func (sc *scheduler) explain(pl *placement) string {
	if len(sc.index) == 0 {
		return msgNoNodes
	}
	var parts []string
	add := func(n int, reason string) {
		if n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+reason)
		}
	}
	for r := rNotReady; r < nReasons; r++ {
		add(pl.fails[r], reasonText[r])
	}
	for msg, n := range pl.taintFails {
		add(n, msg)
	}
	add(pl.short[0], reasonCPU)
	add(pl.short[1], reasonMemory)
	add(pl.short[2], reasonStorage)
	slices.Sort(parts)
	return "0/" + strconv.Itoa(len(sc.index)) + " nodes are available: " + strings.Join(parts, ", ") + "."
}
