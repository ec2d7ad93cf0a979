package reconcile

import (
	"slices"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/manifests"
)

// affinityTerm is a compiled pod (anti-)affinity term of one pod: which
// pods it selects (by namespace and labels) within a topology domain.
type affinityTerm struct {
	key         string // canonical form, the term's identity across pods
	topologyKey string
	namespaces  []string // sorted
	// nsSelector selects namespaces by their labels; set when the term has
	// a namespaceSelector.
	nsSelector    manifests.Selector
	hasNSSelector bool
	selector      manifests.Selector
	weight        int64 // preferred terms
}

// podAffinity holds a pod's compiled inter-pod affinity.
type podAffinity struct {
	required, antiRequired   []*affinityTerm
	preferred, antiPreferred []*affinityTerm
	// requiredKey identifies the set of required affinity terms.
	requiredKey string
}

// compilePodAffinity compiles the pod affinity and anti-affinity of a pod
// in namespace with labels; nil when it has none.
func compilePodAffinity(namespace string, labels map[string]string, a *manifests.Affinity) *podAffinity {
	if a == nil || (a.PodAffinity == nil && a.PodAntiAffinity == nil) {
		return nil
	}
	pa := &podAffinity{}
	term := func(t *manifests.PodAffinityTerm, weight int32) *affinityTerm {
		return compileAffinityTerm(namespace, labels, t, int64(weight))
	}
	if aff := a.PodAffinity; aff != nil {
		for i := range aff.RequiredDuringSchedulingIgnoredDuringExecution {
			pa.required = append(pa.required, term(&aff.RequiredDuringSchedulingIgnoredDuringExecution[i], 0))
		}
		for i := range aff.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &aff.PreferredDuringSchedulingIgnoredDuringExecution[i]
			pa.preferred = append(pa.preferred, term(&w.PodAffinityTerm, w.Weight))
		}
	}
	if anti := a.PodAntiAffinity; anti != nil {
		for i := range anti.RequiredDuringSchedulingIgnoredDuringExecution {
			pa.antiRequired = append(pa.antiRequired, term(&anti.RequiredDuringSchedulingIgnoredDuringExecution[i], 0))
		}
		for i := range anti.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &anti.PreferredDuringSchedulingIgnoredDuringExecution[i]
			pa.antiPreferred = append(pa.antiPreferred, term(&w.PodAffinityTerm, w.Weight))
		}
	}
	if len(pa.required) > 0 {
		keys := make([]string, len(pa.required))
		for i, t := range pa.required {
			keys[i] = t.key
		}
		pa.requiredKey = strings.Join(keys, "\x01")
	}
	return pa
}

// compileAffinityTerm resolves a term of a pod in namespace with labels:
// no namespaces and no namespaceSelector mean the pod's own namespace;
// matchLabelKeys and mismatchLabelKeys take their values from the pod.
func compileAffinityTerm(namespace string, labels map[string]string, t *manifests.PodAffinityTerm, weight int64) *affinityTerm {
	at := &affinityTerm{
		topologyKey: t.TopologyKey,
		selector:    mergeSelector(t.LabelSelector, labels, t.MatchLabelKeys, t.MismatchLabelKeys),
		weight:      weight,
	}
	switch {
	case len(t.Namespaces) == 0 && t.NamespaceSelector == nil:
		at.namespaces = []string{namespace}
	default:
		at.namespaces = slices.Compact(slices.Sorted(slices.Values(t.Namespaces)))
	}
	if t.NamespaceSelector != nil {
		sel, err := manifests.SelectorFromLabelSelector(t.NamespaceSelector)
		if err != nil {
			sel = manifests.Nothing()
		}
		at.nsSelector, at.hasNSSelector = sel, true
	}
	var b strings.Builder
	b.WriteString(at.topologyKey)
	b.WriteByte(0)
	b.WriteString(strings.Join(at.namespaces, ","))
	b.WriteByte(0)
	if at.hasNSSelector {
		b.WriteString("ns:" + at.nsSelector.String())
	}
	b.WriteByte(0)
	b.WriteString(at.selector.String())
	at.key = b.String()
	return at
}

// matches reports whether a pod in namespace ns with labels is selected
// by the term; nsLabels gives a namespace's labels.
func (t *affinityTerm) matches(ns string, labels map[string]string, nsLabels func(string) map[string]string) bool {
	if !slices.Contains(t.namespaces, ns) && (!t.hasNSSelector || !t.nsSelector.Matches(nsLabels(ns))) {
		return false
	}
	return t.selector.Matches(labels)
}

// Kinds of the terms that pods hold, for the symmetric checks: an existing
// pod's required anti-affinity keeps matching pods away; its affinity and
// preferences draw or push matching pods in the score.
const (
	heldAntiRequired = iota
	heldRequired     // scored with kube-scheduler's hardPodAffinityWeight, 1
	heldPreferred
	heldAntiPreferred
)

// heldTerm is a term that placed pods hold, with how many hold it per
// topology domain.
type heldTerm struct {
	term   *affinityTerm
	kind   int
	topo   *topology // of term.topologyKey
	counts []int32   // per domain
	total  int
}

// matchCount counts, per topology domain, the tracked pods that match all
// of a set of terms (one term, or a pod's required affinity terms).
type matchCount struct {
	terms  []*affinityTerm
	topos  []*topology // per term, of its topology key
	counts [][]int32   // per term, per domain
	total  int
}

// trackedPod is a pod that counts for affinity and spreading: bound (or
// placed by this plan) to a node, not terminating and not finished.
type trackedPod struct {
	namespace string
	labels    map[string]string
	node      int
}

// nsLabelsOf returns a namespace's labels: those of its Namespace object in
// the commit, and kubernetes.io/metadata.name, which Kubernetes sets on
// every namespace.
func (sc *scheduler) nsLabelsOf(ns string) map[string]string {
	if l, ok := sc.nsLabels[ns]; ok {
		return l
	}
	l := map[string]string{"kubernetes.io/metadata.name": ns}
	sc.nsLabels[ns] = l
	return l
}

// matchCountFor returns the counts of the pods matching all terms, keyed by
// key, computing them from the tracked pods the first time.
func (sc *scheduler) matchCountFor(key string, terms []*affinityTerm) *matchCount {
	if mc, ok := sc.matches[key]; ok {
		return mc
	}
	mc := &matchCount{terms: terms, topos: make([]*topology, len(terms)), counts: make([][]int32, len(terms))}
	for i, t := range terms {
		mc.topos[i] = sc.topology(t.topologyKey)
		mc.counts[i] = make([]int32, mc.topos[i].n)
	}
	for i := range sc.tracked {
		sc.countMatch(mc, &sc.tracked[i])
	}
	sc.matches[key] = mc
	sc.matchList = append(sc.matchList, mc)
	return mc
}

func (sc *scheduler) countMatch(mc *matchCount, tp *trackedPod) {
	for _, t := range mc.terms {
		if !t.matches(tp.namespace, tp.labels, sc.nsLabelsOf) {
			return
		}
	}
	for i, topo := range mc.topos {
		if d := topo.domain[tp.node]; d >= 0 {
			mc.counts[i][d]++
			mc.total++
		}
	}
}

// hold records the terms of a pod placed on node.
func (sc *scheduler) hold(pa *podAffinity, node int) {
	add := func(t *affinityTerm, kind int) {
		key := strconv.Itoa(kind) + ":" + strconv.FormatInt(t.weight, 10) + ":" + t.key
		h, ok := sc.held[key]
		if !ok {
			topo := sc.topology(t.topologyKey)
			h = &heldTerm{term: t, kind: kind, topo: topo, counts: make([]int32, topo.n)}
			sc.held[key] = h
			sc.heldList = append(sc.heldList, h)
		}
		if d := h.topo.domain[node]; d >= 0 {
			h.counts[d]++
			h.total++
		}
	}
	for _, t := range pa.antiRequired {
		add(t, heldAntiRequired)
	}
	for _, t := range pa.required {
		add(t, heldRequired)
	}
	for _, t := range pa.preferred {
		add(t, heldPreferred)
	}
	for _, t := range pa.antiPreferred {
		add(t, heldAntiPreferred)
	}
}

// affinityState is what the inter-pod affinity filter and score need for
// one pod, computed before its nodes are looked at.
type affinityState struct {
	required *matchCount // the pod's required affinity, nil when none
	// selfMatch: the pod matches all its own required affinity terms, so
	// the first pod of such a group may go anywhere.
	selfMatch bool
	anti      []*matchCount // the pod's required anti-affinity terms
	existing  []*heldTerm   // placed pods' required anti-affinity terms the pod matches
	// scores are the contributions to the pod's affinity score.
	scores []affinityScore
}

type affinityScore struct {
	topo   *topology
	counts []int32
	factor int64
}

// affinityFor prepares the inter-pod affinity checks of a pod; nil when
// neither the pod nor any placed pod has terms that concern it.
func (sc *scheduler) affinityFor(req *podRequest) *affinityState {
	pa := req.affinity
	if pa == nil && len(sc.heldList) == 0 {
		return nil
	}
	st := &affinityState{}
	if pa != nil {
		if len(pa.required) > 0 {
			st.required = sc.matchCountFor("all\x02"+pa.requiredKey, pa.required)
			st.selfMatch = true
			for _, t := range pa.required {
				if !t.matches(req.namespace, req.labels, sc.nsLabelsOf) {
					st.selfMatch = false
				}
			}
		}
		for _, t := range pa.antiRequired {
			st.anti = append(st.anti, sc.matchCountFor(t.key, []*affinityTerm{t}))
		}
		for _, t := range pa.preferred {
			mc := sc.matchCountFor(t.key, []*affinityTerm{t})
			st.scores = append(st.scores, affinityScore{mc.topos[0], mc.counts[0], t.weight})
		}
		for _, t := range pa.antiPreferred {
			mc := sc.matchCountFor(t.key, []*affinityTerm{t})
			st.scores = append(st.scores, affinityScore{mc.topos[0], mc.counts[0], -t.weight})
		}
	}
	for _, h := range sc.heldList {
		if h.total == 0 || !h.term.matches(req.namespace, req.labels, sc.nsLabelsOf) {
			continue
		}
		topo := h.topo
		switch h.kind {
		case heldAntiRequired:
			st.existing = append(st.existing, h)
		case heldRequired:
			st.scores = append(st.scores, affinityScore{topo, h.counts, 1})
		case heldPreferred:
			st.scores = append(st.scores, affinityScore{topo, h.counts, h.term.weight})
		case heldAntiPreferred:
			st.scores = append(st.scores, affinityScore{topo, h.counts, -h.term.weight})
		}
	}
	if st.required == nil && len(st.anti) == 0 && len(st.existing) == 0 && len(st.scores) == 0 {
		return nil
	}
	return st
}

// filter checks node i in kube-scheduler's order: the pod's affinity, its
// anti-affinity, then the anti-affinity of the pods already there. It
// returns the failed check's reason, or 0.
func (st *affinityState) filter(i int) uint8 {
	if mc := st.required; mc != nil {
		exist := true
		for ti, topo := range mc.topos {
			d := topo.domain[i]
			if d < 0 {
				return rPodAffinity // the node lacks the topology label
			}
			if mc.counts[ti][d] <= 0 {
				exist = false
			}
		}
		// The first pod of a group whose terms match itself goes anywhere.
		if !exist && (mc.total > 0 || !st.selfMatch) {
			return rPodAffinity
		}
	}
	for _, mc := range st.anti {
		if d := mc.topos[0].domain[i]; d >= 0 && mc.counts[0][d] > 0 {
			return rPodAnti
		}
	}
	for _, h := range st.existing {
		if d := h.topo.domain[i]; d >= 0 && h.counts[d] > 0 {
			return rExistingAnti
		}
	}
	return 0
}

// raw is InterPodAffinity's score of node i before normalisation.
func (st *affinityState) raw(i int) int64 {
	var s int64
	for _, c := range st.scores {
		if d := c.topo.domain[i]; d >= 0 {
			s += c.factor * int64(c.counts[d])
		}
	}
	return s
}
