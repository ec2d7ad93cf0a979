package reconcile

import (
	"maps"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// ControllerRevisionHashLabel ties a DaemonSet's pod to the revision of the
// template it was made from, as Kubernetes labels it.
const ControllerRevisionHashLabel = "controller-revision-hash"

// DaemonSetOwner returns the Pod.Owner of a DaemonSet's pods.
func DaemonSetOwner(namespace, name string) string {
	return "DaemonSet/" + namespace + "/" + name
}

// DaemonSetStatus is a DaemonSet's status as it will be once the plan is
// applied.
type DaemonSetStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// TemplateHash is the current revision's controller-revision-hash.
	TemplateHash   string `json:"templateHash"`
	ObservedCommit string `json:"observedCommit,omitempty"`
	// Complete is true when every node that should run the DaemonSet, lost
	// nodes aside, runs an available pod of the current revision, and no
	// other pod is left.
	Complete bool `json:"complete"`
	manifests.DaemonSetStatus
}

// daemonTolerations are what Kubernetes' DaemonSet controller adds to its
// pods, so that they stay on nodes that are not ready, unreachable, under
// pressure or cordoned.
var daemonTolerations = []manifests.Toleration{
	{Key: TaintNotReady, Operator: manifests.TolerationOpExists, Effect: manifests.TaintEffectNoExecute},
	{Key: "node.kubernetes.io/unreachable", Operator: manifests.TolerationOpExists, Effect: manifests.TaintEffectNoExecute},
	{Key: "node.kubernetes.io/disk-pressure", Operator: manifests.TolerationOpExists, Effect: manifests.TaintEffectNoSchedule},
	{Key: "node.kubernetes.io/memory-pressure", Operator: manifests.TolerationOpExists, Effect: manifests.TaintEffectNoSchedule},
	{Key: "node.kubernetes.io/pid-pressure", Operator: manifests.TolerationOpExists, Effect: manifests.TaintEffectNoSchedule},
	{Key: TaintUnschedulable, Operator: manifests.TolerationOpExists, Effect: manifests.TaintEffectNoSchedule},
}

// daemonNode is one node's share of a DaemonSet.
type daemonNode struct {
	name     string
	should   bool   // the node matches and its taints are tolerated
	new, old []*Pod // active pods of the current and of older revisions
	term     int    // terminating pods
}

// daemonSet plans one DaemonSet: a pod of the current revision on every
// node that matches its node selector and affinity and whose NoSchedule and
// NoExecute taints its pods tolerate, none elsewhere, and a new template
// rolled out node by node by its update strategy.
func (p *planner) daemonSet(ds *manifests.DaemonSet, pods []*Pod) {
	owner := DaemonSetOwner(ds.Namespace, ds.Name)
	hash := TemplateHash(&ds.Spec.Template)
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	tols := slices.Concat(ds.Spec.Template.Spec.Tolerations, daemonTolerations)
	sel := compileNodeSelection(&ds.Spec.Template.Spec)

	byNode := map[string]*daemonNode{}
	var order []string
	nodeOf := func(name string) *daemonNode {
		if dn, ok := byNode[name]; ok {
			return dn
		}
		dn := &daemonNode{name: name}
		byNode[name] = dn
		order = append(order, name)
		return dn
	}
	// The nodes of the cluster: registered, or known and not registered (not ready). A node
	// removed from the cluster runs no DaemonSet pod.
	removed := func(name string) bool { return p.nodes[name] == nil || (!p.registered(name) && !p.s.Known[name]) }
	for i := range p.nodeList {
		n := &p.nodeList[i]
		if removed(n.Name) {
			continue
		}
		dn := nodeOf(n.Name)
		dn.should = sel.matchesNode(n.Name, withHostname(n.Name, n.Labels)) && untoleratedTaint(n.Taints, tols) == nil
	}
	for _, pod := range pods {
		node := pod.Node
		if node == "" {
			node = daemonPodNode(pod)
		}
		switch {
		case pod.Terminating && pod.Node == "":
			p.delete(pod, DeleteScaleDown, "")
		case pod.Node != "" && removed(pod.Node):
			// Its node was removed from the cluster.
			p.delete(pod, DeleteNodeLost, owner)
		case pod.Terminating || p.isDeleted(pod):
			nodeOf(node).term++
		case pod.Phase == manifests.PodFailed || pod.Phase == manifests.PodSucceeded:
			p.delete(pod, DeleteFailed, owner)
			nodeOf(node).term++
		case pod.TemplateHash == hash:
			dn := nodeOf(node)
			dn.new = append(dn.new, pod)
		default:
			dn := nodeOf(node)
			dn.old = append(dn.old, pod)
		}
	}
	slices.Sort(order)

	desired := 0
	for _, name := range order {
		if byNode[name].should {
			desired++
		}
	}
	rolling := ds.Spec.UpdateStrategy.Type != manifests.OnDeleteDaemonSetStrategyType
	surge, unavailable := daemonSetBounds(ds, desired)
	// Nodes without an available pod count against maxUnavailable.
	unavail := 0
	for _, name := range order {
		dn := byNode[name]
		if dn.should && !slices.ContainsFunc(slices.Concat(dn.new, dn.old), func(pod *Pod) bool { return p.podAvailable(pod, minReady) }) {
			unavail++
		}
	}
	surged := 0
	for _, name := range order {
		if dn := byNode[name]; dn.should && len(dn.new) > 0 && len(dn.old) > 0 {
			surged++
		}
	}
	created, deleted := 0, 0
	del := func(pod *Pod, reason string) {
		p.delete(pod, reason, owner)
		p.event(owner, EventNormal, "SuccessfulDelete", "Deleted pod: "+pod.Name)
		deleted++
	}
	var create []string
	for _, name := range order {
		dn := byNode[name]
		if !dn.should {
			// Misscheduled: the node no longer matches, or taints it.
			for _, pod := range slices.Concat(dn.new, dn.old) {
				del(pod, DeleteScaleDown)
			}
			continue
		}
		// One pod per node: extra ones of the current revision go.
		p.deletionOrder(dn.new)
		for _, pod := range dn.new[min(len(dn.new), 1):] {
			del(pod, DeleteScaleDown)
		}
		dn.new = dn.new[:min(len(dn.new), 1)]
		switch {
		case len(dn.new) == 0 && len(dn.old) == 0:
			if dn.term == 0 {
				create = append(create, name)
			}
		case len(dn.old) == 0 || !rolling:
		case len(dn.new) > 0:
			// Surged: the old pod goes once the new one is available.
			if p.podAvailable(dn.new[0], minReady) {
				for _, pod := range dn.old {
					del(pod, DeleteRollout)
				}
			}
		default:
			oldAvailable := slices.ContainsFunc(dn.old, func(pod *Pod) bool { return p.podAvailable(pod, minReady) })
			switch {
			case !oldAvailable:
				// Costs no availability: replace it now.
				for _, pod := range dn.old {
					del(pod, DeleteRollout)
				}
			case surged < surge:
				create = append(create, name)
				surged++
			case surge == 0 && unavail < unavailable:
				for _, pod := range dn.old {
					del(pod, DeleteRollout)
				}
				unavail++
			}
		}
	}
	for _, name := range create {
		p.daemonPod(ds, owner, hash, name)
		created++
	}
	p.plan.DaemonSets = append(p.plan.DaemonSets, p.daemonSetStatus(ds, hash, byNode, order, created, minReady))
}

// daemonPod creates the DaemonSet's pod for a node: the template, bound to
// the node by node affinity (as Kubernetes binds it, so that the scheduler
// still checks its resources and ports) and with the DaemonSet
// tolerations.
func (p *planner) daemonPod(ds *manifests.DaemonSet, owner, hash, node string) {
	labels := maps.Clone(ds.Spec.Template.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ControllerRevisionHashLabel] = hash
	spec := ds.Spec.Template.Spec.DeepCopy()
	for _, t := range daemonTolerations {
		if !slices.ContainsFunc(spec.Tolerations, func(x manifests.Toleration) bool { return x.Key == t.Key && x.Effect == t.Effect }) {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
	if spec.Affinity == nil {
		spec.Affinity = &manifests.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &manifests.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &manifests.NodeSelector{
		NodeSelectorTerms: []manifests.NodeSelectorTerm{{MatchFields: []manifests.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: manifests.NodeSelectorOpIn, Values: []string{node}},
		}}},
	}
	name := p.uniqueName(ds.Namespace, func(suffix string) string { return jobPodName(ds.Name, suffix) })
	pod := &manifests.Pod{
		TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: ds.Namespace, Labels: labels,
			Annotations: maps.Clone(ds.Spec.Template.Annotations)},
		Spec: *spec,
	}
	p.create(Pod{
		UID: p.ids.NewUID(), Namespace: ds.Namespace, Name: name, Owner: owner, TemplateHash: hash,
		Spec: pod, Commit: p.s.Commit, Created: p.s.Now, Phase: manifests.PodPending,
	}, requestOf(ds.Namespace, labels, spec))
	p.event(owner, EventNormal, "SuccessfulCreate", "Created pod: "+name)
}

// daemonSetStatus counts the DaemonSet's pods as they will be after the
// plan, in Kubernetes' terms.
func (p *planner) daemonSetStatus(ds *manifests.DaemonSet, hash string, byNode map[string]*daemonNode, order []string, created int, minReady time.Duration) DaemonSetStatus {
	var st manifests.DaemonSetStatus
	old := 0
	// A lost node counts in the status, as Kubernetes counts it, but does not hold the rollout
	// back from Complete: no pod can become available there until it is back.
	var lostShould int32
	for _, name := range order {
		dn := byNode[name]
		ns := p.nodes[name]
		lost := ns != nil && ns.lost
		if lost && dn.should {
			lostShould++
		}
		var live []*Pod
		for _, pod := range slices.Concat(dn.new, dn.old) {
			if !p.isDeleted(pod) {
				live = append(live, pod)
			}
		}
		if dn.should {
			st.DesiredNumberScheduled++
		}
		if len(live) == 0 {
			continue
		}
		if !dn.should {
			st.NumberMisscheduled++
			continue
		}
		st.CurrentNumberScheduled++
		for _, pod := range live {
			if pod.TemplateHash != hash && !lost {
				old++
			}
		}
		if slices.ContainsFunc(live, func(pod *Pod) bool { return pod.TemplateHash == hash }) {
			st.UpdatedNumberScheduled++
		}
		if slices.ContainsFunc(live, p.podReady) {
			st.NumberReady++
		}
		if slices.ContainsFunc(live, func(pod *Pod) bool { return p.podAvailable(pod, minReady) }) {
			st.NumberAvailable++
		}
	}
	st.CurrentNumberScheduled += int32(created)
	st.UpdatedNumberScheduled += int32(created)
	st.NumberUnavailable = max(st.DesiredNumberScheduled-st.NumberAvailable, 0)
	complete := old == 0 && st.NumberMisscheduled == 0 && st.UpdatedNumberScheduled >= st.DesiredNumberScheduled-lostShould &&
		st.NumberAvailable >= st.DesiredNumberScheduled-lostShould
	return DaemonSetStatus{Namespace: ds.Namespace, Name: ds.Name, TemplateHash: hash, ObservedCommit: p.s.Commit,
		Complete: complete, DaemonSetStatus: st}
}

// daemonSetBounds resolves maxSurge and maxUnavailable against the nodes
// that should run the DaemonSet, both rounded up as Kubernetes does.
func daemonSetBounds(ds *manifests.DaemonSet, desired int) (surge, unavailable int) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	s, u := manifests.FromInt(manifests.DefaultDaemonSetMaxSurge), manifests.FromInt(manifests.DefaultDaemonSetMaxUnavailable)
	if ru != nil && ru.MaxSurge != nil {
		s = *ru.MaxSurge
	}
	if ru != nil && ru.MaxUnavailable != nil {
		u = *ru.MaxUnavailable
	}
	surge, _ = s.ScaledValue(desired, true)
	unavailable, _ = u.ScaledValue(desired, true)
	surge, unavailable = max(surge, 0), max(unavailable, 0)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// daemonPodNode returns the node a pending DaemonSet pod is bound to by its
// node affinity, "" when it names none.
func daemonPodNode(pod *Pod) string {
	if pod.Spec == nil || pod.Spec.Spec.Affinity == nil || pod.Spec.Spec.Affinity.NodeAffinity == nil {
		return ""
	}
	req := pod.Spec.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if req == nil {
		return ""
	}
	for _, t := range req.NodeSelectorTerms {
		for _, f := range t.MatchFields {
			if f.Key == "metadata.name" && f.Operator == manifests.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

// withHostname returns labels with kubernetes.io/hostname set to the
// node's name when the node does not set it.
func withHostname(name string, labels map[string]string) map[string]string {
	if _, ok := labels[LabelHostname]; ok {
		return labels
	}
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[LabelHostname] = name
	return out
}
