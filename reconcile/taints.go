package reconcile

import (
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// tolerates reports whether a toleration matches a taint, as Kubernetes
// matches them: the same effect (or any, when the toleration names none),
// the same key (or any, when it names none), and with operator Equal (the
// default) the same value.
func tolerates(t *manifests.Toleration, taint *manifests.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", manifests.TolerationOpEqual:
		return t.Value == taint.Value
	case manifests.TolerationOpExists:
		return true
	}
	return false
}

// toleration returns the first of tols that tolerates taint, or nil.
func toleration(tols []manifests.Toleration, taint *manifests.Taint) *manifests.Toleration {
	for i := range tols {
		if tolerates(&tols[i], taint) {
			return &tols[i]
		}
	}
	return nil
}

// untoleratedTaint returns the node's first NoSchedule or NoExecute taint
// that tols do not tolerate, or nil.
func untoleratedTaint(taints []Taint, tols []manifests.Toleration) *manifests.Taint {
	for i := range taints {
		t := &taints[i].Taint
		if t.Effect != manifests.TaintEffectNoSchedule && t.Effect != manifests.TaintEffectNoExecute {
			continue
		}
		if toleration(tols, t) == nil {
			return t
		}
	}
	return nil
}

// avoidCount counts the node's PreferNoSchedule taints that tols do not
// tolerate, as TaintToleration scores (only tolerations for every effect or
// for PreferNoSchedule count).
func avoidCount(taints []Taint, tols []manifests.Toleration) int32 {
	var n int32
	for i := range taints {
		t := &taints[i].Taint
		if t.Effect != manifests.TaintEffectPreferNoSchedule {
			continue
		}
		tolerated := false
		for j := range tols {
			if (tols[j].Effect == "" || tols[j].Effect == manifests.TaintEffectPreferNoSchedule) && tolerates(&tols[j], t) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			n++
		}
	}
	return n
}

// taintReason renders kube-scheduler's message for an untolerated taint.
func taintReason(t *manifests.Taint) string {
	return "node(s) had untolerated taint {" + t.Key + ": " + t.Value + "}"
}

// evictTainted deletes the pods bound to nodes with NoExecute taints they
// do not tolerate, as Kubernetes' taint eviction controller does: at once
// for a taint without a matching toleration, tolerationSeconds after the
// taint came (or the pod was created, when later) for one tolerated for a
// while. It runs before the controllers, which then replace the pods.
func (p *planner) evictTainted() {
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if pod.Node == "" || pod.Terminating || pod.Spec == nil || pod.Phase == manifests.PodFailed || pod.Phase == manifests.PodSucceeded {
			continue
		}
		ns := p.nodes[pod.Node]
		if ns == nil || ns.lost || len(ns.node.Taints) == 0 {
			continue
		}
		taint, wait := noExecuteVerdict(ns.node.Taints, pod.Spec.Spec.Tolerations, pod.Created, p.s.Now)
		switch {
		case taint != nil:
			p.delete(pod, DeleteTaintEviction, "")
			p.event("Pod/"+pod.Namespace+"/"+pod.Name, EventNormal, DeleteTaintEviction,
				"Marking for deletion Pod "+pod.Namespace+"/"+pod.Name+": node "+pod.Node+" has taint {"+taint.Key+": "+taint.Value+"}:NoExecute")
		case wait > 0:
			p.requeue(wait)
		}
	}
}

// noExecuteVerdict decides about a pod with tolerations tols on a node
// with taints. It returns the NoExecute taint that evicts the pod now, or
// nil and how long until one does (0: never). A taint tolerated with
// tolerationSeconds evicts the pod that long after the taint came, or
// after the pod was created when that is later; tolerationSeconds of 0 or
// less evict at once.
func noExecuteVerdict(taints []Taint, tols []manifests.Toleration, created, now time.Time) (*manifests.Taint, time.Duration) {
	var wait time.Duration
	for i := range taints {
		t := &taints[i]
		if t.Effect != manifests.TaintEffectNoExecute {
			continue
		}
		tol := toleration(tols, &t.Taint)
		if tol == nil {
			return &t.Taint, 0
		}
		if tol.TolerationSeconds == nil {
			continue
		}
		secs := *tol.TolerationSeconds
		if secs <= 0 {
			return &t.Taint, 0
		}
		start := created
		if t.TimeAdded.After(start) {
			start = t.TimeAdded
		}
		left := start.Add(time.Duration(min(secs, maxTolerationSeconds)) * time.Second).Sub(now)
		if left <= 0 {
			return &t.Taint, 0
		}
		if wait == 0 || left < wait {
			wait = left
		}
	}
	return nil, wait
}

// maxTolerationSeconds keeps a huge tolerationSeconds from overflowing a
// time.Duration (about 290 years).
const maxTolerationSeconds = int64(1<<63-1) / int64(time.Second)
