package reconcile

import (
	"math"

	"github.com/shoal-dev/shoal/manifests"
)

// topology maps nodes to the domains of one topology key.
type topology struct {
	domain []int32 // per node: the domain of its label value, -1 without the label
	n      int     // number of domains
}

// topology returns the domains of key, made from the node labels the first
// time.
func (sc *scheduler) topology(key string) *topology {
	if t, ok := sc.topologies[key]; ok {
		return t
	}
	t := &topology{domain: make([]int32, len(sc.nodes))}
	ids := make(map[string]int32)
	for i := range sc.nodes {
		n := &sc.nodes[i]
		v, ok := n.labels[key]
		if !ok || n.dup {
			t.domain[i] = -1
			continue
		}
		id, seen := ids[v]
		if !seen {
			id = int32(len(ids))
			ids[v] = id
		}
		t.domain[i] = id
	}
	t.n = len(ids)
	sc.topologies[key] = t
	return t
}

// spreadConstraint is a compiled topology spread constraint of a pod.
type spreadConstraint struct {
	key           string
	maxSkew       int64
	hard          bool // DoNotSchedule, else ScheduleAnyway
	minDomains    int
	selector      manifests.Selector
	countKey      string // which pods are counted: namespace and selector
	namespace     string
	honorAffinity bool // count only nodes that match the pod's node affinity
	honorTaints   bool // count only nodes whose taints the pod tolerates
	selfMatch     bool // the pod itself matches the selector
}

func compileSpread(namespace string, labels map[string]string, cs []manifests.TopologySpreadConstraint) []spreadConstraint {
	var out []spreadConstraint
	for i := range cs {
		c := &cs[i]
		if c.TopologyKey == "" {
			continue
		}
		var hard bool
		switch c.WhenUnsatisfiable {
		case manifests.DoNotSchedule:
			hard = true
		case manifests.ScheduleAnyway:
		default:
			continue // refused by validation
		}
		sel := mergeSelector(c.LabelSelector, labels, c.MatchLabelKeys, nil)
		sc := spreadConstraint{
			key: c.TopologyKey, maxSkew: max(int64(c.MaxSkew), 1), hard: hard, minDomains: 1,
			selector: sel, namespace: namespace, countKey: namespace + "\x00" + sel.String(),
			honorAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == manifests.NodeInclusionPolicyHonor,
			honorTaints:   c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == manifests.NodeInclusionPolicyHonor,
			selfMatch:     sel.Matches(labels),
		}
		if c.MinDomains != nil && *c.MinDomains > 0 {
			sc.minDomains = int(*c.MinDomains)
		}
		out = append(out, sc)
	}
	return out
}

// podCount counts, per node, the tracked pods of a namespace that match a
// selector. An empty selector counts none, as in Kubernetes.
type podCount struct {
	namespace string
	selector  manifests.Selector
	perNode   []int32
}

func (sc *scheduler) podCountFor(c *spreadConstraint) *podCount {
	if pc, ok := sc.podCounts[c.countKey]; ok {
		return pc
	}
	pc := &podCount{namespace: c.namespace, selector: c.selector, perNode: make([]int32, len(sc.nodes))}
	for i := range sc.tracked {
		pc.count(&sc.tracked[i])
	}
	sc.podCounts[c.countKey] = pc
	sc.podCountList = append(sc.podCountList, pc)
	return pc
}

func (pc *podCount) count(tp *trackedPod) {
	if tp.namespace == pc.namespace && !pc.selector.Empty() && pc.selector.Matches(tp.labels) {
		pc.perNode[tp.node]++
	}
}

// spreadState is the pod topology spread of one pod, counted before its
// nodes are looked at.
type spreadState struct {
	hard []hardSpread
	soft []*spreadConstraint
	// The soft constraints' pod counts and topologies (as soft).
	pcs       []*podCount
	softTopos []*topology
}

type hardSpread struct {
	c      *spreadConstraint
	topo   *topology
	counts []int32 // per domain, over the eligible nodes
	min    int64   // the global minimum (0 below minDomains)
}

// included reports whether node i is one of a constraint's domains for
// the pod: it exists (not lost), has the labels of all topos, and passes
// the constraint's node inclusion policies.
func (sc *scheduler) included(i int, c *spreadConstraint, fit *staticFit, topos []*topology) bool {
	if sc.nodes[i].lost {
		return false
	}
	for _, t := range topos {
		if t.domain[i] < 0 { // also every duplicate node
			return false
		}
	}
	if c.honorAffinity && !fit.affinityOK[i] {
		return false
	}
	if c.honorTaints && !fit.taintsOK[i] {
		return false
	}
	return true
}

// spreadFor counts the pod's constraints over the nodes; nil when it has
// none.
func (sc *scheduler) spreadFor(req *podRequest, fit *staticFit) *spreadState {
	if len(req.spread) == 0 {
		return nil
	}
	st := &spreadState{}
	var hard []*spreadConstraint
	var hardTopos []*topology
	for i := range req.spread {
		c := &req.spread[i]
		if c.hard {
			hard = append(hard, c)
			hardTopos = append(hardTopos, sc.topology(c.key))
		} else {
			st.soft = append(st.soft, c)
			st.pcs = append(st.pcs, sc.podCountFor(c))
			st.softTopos = append(st.softTopos, sc.topology(c.key))
		}
	}
	for ci, c := range hard {
		pc := sc.podCountFor(c)
		topo := hardTopos[ci]
		h := hardSpread{c: c, topo: topo, counts: make([]int32, topo.n)}
		present := make([]bool, topo.n)
		for i := range sc.nodes {
			if !sc.included(i, c, fit, hardTopos) {
				continue
			}
			d := topo.domain[i]
			h.counts[d] += pc.perNode[i]
			present[d] = true
		}
		h.min = math.MaxInt32
		domains := 0
		for d, ok := range present {
			if ok {
				domains++
				h.min = min(h.min, int64(h.counts[d]))
			}
		}
		if domains < c.minDomains {
			h.min = 0
		}
		st.hard = append(st.hard, h)
	}
	return st
}

// filter checks node i against the pod's DoNotSchedule constraints: the
// node has the topology label and placing the pod there keeps the skew
// (pods in the node's domain, plus the pod, minus the global minimum)
// within maxSkew.
func (st *spreadState) filter(i int) uint8 {
	for _, h := range st.hard {
		d := h.topo.domain[i]
		if d < 0 {
			return rSpreadLabel
		}
		skew := int64(h.counts[d]) - h.min
		if h.c.selfMatch {
			skew++
		}
		if skew > h.c.maxSkew {
			return rSpread
		}
	}
	return 0
}

// scores computes PodTopologySpread's normalised scores (0 to 100) of the
// feasible nodes for the pod's ScheduleAnyway constraints, into out
// (indexed as feasible), as kube-scheduler does: each node is charged the
// matching pods of its domain, weighted by log(domains+2), plus maxSkew-1;
// fewer is better. Nodes without every topology label get 0.
func (st *spreadState) scores(sc *scheduler, fit *staticFit, feasible []int, out []int64) {
	ignored := make([]bool, len(feasible))
	scored := 0
	for fi, i := range feasible {
		for _, t := range st.softTopos {
			if t.domain[i] < 0 {
				ignored[fi] = true
			}
		}
		if !ignored[fi] {
			scored++
		}
	}
	raw := make([]float64, len(feasible))
	for ci, c := range st.soft {
		pc := st.pcs[ci]
		if c.key == LabelHostname {
			w := math.Log(float64(scored + 2))
			for fi, i := range feasible {
				if !ignored[fi] {
					raw[fi] += float64(pc.perNode[i])*w + float64(c.maxSkew-1)
				}
			}
			continue
		}
		topo := st.softTopos[ci]
		counted := make([]bool, topo.n)
		size := 0
		for fi, i := range feasible {
			if d := topo.domain[i]; !ignored[fi] && !counted[d] {
				counted[d] = true
				size++
			}
		}
		counts := make([]int64, topo.n)
		for i := range sc.nodes {
			if d := topo.domain[i]; d >= 0 && counted[d] && sc.included(i, c, fit, st.softTopos) {
				counts[d] += int64(pc.perNode[i])
			}
		}
		w := math.Log(float64(size + 2))
		for fi, i := range feasible {
			if !ignored[fi] {
				raw[fi] += float64(counts[topo.domain[i]])*w + float64(c.maxSkew-1)
			}
		}
	}
	minS, maxS := int64(math.MaxInt64), int64(0)
	for fi := range feasible {
		if ignored[fi] {
			continue
		}
		s := int64(math.Round(raw[fi]))
		minS, maxS = min(minS, s), max(maxS, s)
	}
	for fi := range feasible {
		switch s := int64(math.Round(raw[fi])); {
		case ignored[fi]:
			out[fi] = 0
		case maxS == 0:
			out[fi] = maxScore
		default:
			out[fi] = maxScore * (maxS + minS - s) / maxS
		}
	}
}
