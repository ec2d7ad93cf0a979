package reconcile

import (
	"slices"
	"strconv"

	"github.com/shoal-dev/shoal/manifests"
)

// nodeSelection is how a pod picks nodes by their labels and taints, as
// kube-scheduler's NodeAffinity and TaintToleration plugins see it.
type nodeSelection struct {
	// selector is the pod's nodeSelector: every label must be there.
	selector map[string]string
	// required are the required node affinity terms, one of which must
	// match; hasRequired tells "no affinity" from "no term can match".
	required    []nodeTerm
	hasRequired bool
	preferred   []nodeTerm
	tolerations []manifests.Toleration
}

// nodeTerm is a node selector term: all its requirements hold.
type nodeTerm struct {
	exprs, fields []nodeRequirement
	weight        int64 // for preferred terms
}

type nodeRequirement struct {
	key    string
	op     manifests.NodeSelectorOperator
	values []string
	num    int64 // Gt and Lt: the value as an integer
	numOK  bool
}

func compileNodeSelection(spec *manifests.PodSpec) nodeSelection {
	ns := nodeSelection{selector: spec.NodeSelector, tolerations: spec.Tolerations}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil {
		return ns
	}
	na := spec.Affinity.NodeAffinity
	if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
		ns.hasRequired = true
		for i := range r.NodeSelectorTerms {
			if t, ok := compileNodeTerm(&r.NodeSelectorTerms[i]); ok {
				ns.required = append(ns.required, t)
			}
		}
	}
	for i := range na.PreferredDuringSchedulingIgnoredDuringExecution {
		p := &na.PreferredDuringSchedulingIgnoredDuringExecution[i]
		if p.Weight == 0 {
			continue
		}
		if t, ok := compileNodeTerm(&p.Preference); ok {
			t.weight = int64(p.Weight)
			ns.preferred = append(ns.preferred, t)
		}
	}
	return ns
}

// compileNodeTerm compiles a term; an empty term matches no node, as in
// Kubernetes, and is dropped (ok false).
func compileNodeTerm(t *manifests.NodeSelectorTerm) (nodeTerm, bool) {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return nodeTerm{}, false
	}
	conv := func(rs []manifests.NodeSelectorRequirement) []nodeRequirement {
		out := make([]nodeRequirement, len(rs))
		for i, r := range rs {
			out[i] = nodeRequirement{key: r.Key, op: r.Operator, values: r.Values}
			if (r.Operator == manifests.NodeSelectorOpGt || r.Operator == manifests.NodeSelectorOpLt) && len(r.Values) == 1 {
				out[i].num, out[i].numOK = parseInt(r.Values[0])
			}
		}
		return out
	}
	return nodeTerm{exprs: conv(t.MatchExpressions), fields: conv(t.MatchFields)}, true
}

func parseInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// matches reports whether a node holds every requirement of the term.
// matchFields know the field metadata.name.
func (t *nodeTerm) matches(name string, labels map[string]string) bool {
	for i := range t.exprs {
		r := &t.exprs[i]
		v, ok := labels[r.key]
		if !r.matches(v, ok) {
			return false
		}
	}
	for i := range t.fields {
		r := &t.fields[i]
		if !r.matches(name, r.key == "metadata.name") {
			return false
		}
	}
	return true
}

func (r *nodeRequirement) matches(v string, ok bool) bool {
	switch r.op {
	case manifests.NodeSelectorOpIn:
		return ok && slices.Contains(r.values, v)
	case manifests.NodeSelectorOpNotIn:
		return !ok || !slices.Contains(r.values, v)
	case manifests.NodeSelectorOpExists:
		return ok
	case manifests.NodeSelectorOpDoesNotExist:
		return !ok
	case manifests.NodeSelectorOpGt, manifests.NodeSelectorOpLt:
		if !ok || !r.numOK {
			return false
		}
		n, isNum := parseInt(v)
		if !isNum {
			return false
		}
		if r.op == manifests.NodeSelectorOpGt {
			return n > r.num
		}
		return n < r.num
	}
	return false
}

// matchesNode reports whether a node satisfies the pod's nodeSelector and
// its required node affinity (both must hold).
func (s *nodeSelection) matchesNode(name string, labels map[string]string) bool {
	if !matchesAll(s.selector, labels) {
		return false
	}
	if !s.hasRequired {
		return true
	}
	for i := range s.required {
		if s.required[i].matches(name, labels) {
			return true
		}
	}
	return false
}

// preferScore is the sum of the weights of the preferred terms the node
// matches: NodeAffinity's score before normalisation.
func (s *nodeSelection) preferScore(name string, labels map[string]string) int64 {
	var sum int64
	for i := range s.preferred {
		if s.preferred[i].matches(name, labels) {
			sum += s.preferred[i].weight
		}
	}
	return sum
}

func matchesAll(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
