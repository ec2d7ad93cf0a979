package reconcile

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// lostNodes decides which nodes are lost, and since when (Plan.Lost), and
// makes p.nodeList: the registered nodes, then a node that is not ready
// for each lost one. A node that pods are placed on but that is not
// registered is lost: since State.Lost has it, else since now when it is
// known, else since the zero time (it was removed, its pods move at once).
// A lost node that registers again, or that no pod is placed on any more,
// is dropped.
func (p *planner) lostNodes() {
	registered := make(map[string]bool, len(p.s.Nodes))
	for i := range p.s.Nodes {
		registered[p.s.Nodes[i].Name] = true
	}
	lost := map[string]time.Time{}
	for i := range p.s.Pods {
		name := p.s.Pods[i].Node
		if name == "" || registered[name] {
			continue
		}
		if _, done := lost[name]; done {
			continue
		}
		since, was := p.s.Lost[name]
		switch {
		case !p.s.Known[name]:
			// Removed (`shoal node remove`): gone long ago.
			if !was || !since.IsZero() {
				p.nodeChange(name, NodeRemoved, time.Time{})
			}
			since = time.Time{}
		case !was:
			since = p.s.Now
			p.nodeChange(name, NodeNotRegistered, since)
		}
		lost[name] = since
	}
	for name, since := range p.s.Lost {
		if _, still := lost[name]; still {
			continue
		}
		if registered[name] {
			p.nodeChange(name, NodeBack, since)
		} else {
			p.nodeChange(name, NodeForgotten, since)
		}
	}
	slices.SortFunc(p.plan.NodeChanges, func(a, b NodeChange) int { return cmp.Compare(a.Node, b.Node) })
	for _, c := range p.plan.NodeChanges {
		switch c.What {
		case NodeNotRegistered:
			p.event("Node/"+c.Node, EventWarning, "NodeNotReady", "Node "+c.Node+" is not registered: its pods are not ready, its Deployment pods move to other nodes after "+p.grace.String())
		case NodeRemoved:
			p.event("Node/"+c.Node, EventWarning, "RemovingNode", "Node "+c.Node+" was removed from the cluster: its Deployment pods move to other nodes at once")
		case NodeBack:
			p.event("Node/"+c.Node, EventNormal, "NodeReady", "Node "+c.Node+" is registered again")
		}
	}
	p.nodeList = p.s.Nodes
	if len(lost) == 0 {
		return
	}
	p.plan.Lost = lost
	p.nodeList = make([]Node, 0, len(p.s.Nodes)+len(lost))
	p.nodeList = append(p.nodeList, p.s.Nodes...)
	for _, name := range slices.Sorted(maps.Keys(lost)) {
		p.nodeList = append(p.nodeList, Node{Name: name, NotReadySince: lost[name]})
	}
}

func (p *planner) nodeChange(node, what string, since time.Time) {
	p.plan.NodeChanges = append(p.plan.NodeChanges, NodeChange{Node: node, What: what, Since: since})
}

// drain deletes the Deployment pods of draining nodes, so that the
// Deployments replace them elsewhere in this plan. Standalone pods stay, as
// kubectl drain leaves unmanaged pods without --force. As kubectl drain
// evicts, a pod goes only when the PodDisruptionBudgets that select it allow
// one more disruption; the others wait for a later pass, once their
// replacements are Ready.
func (p *planner) drain() {
	var budgets []*disruptionBudget
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if pod.Owner == "" || pod.Node == "" || pod.Terminating || p.isDeleted(pod) || p.nodeLost(pod) {
			continue
		}
		if strings.HasPrefix(pod.Owner, "DaemonSet/") {
			continue // a DaemonSet's pod stays, as kubectl drain --ignore-daemonsets leaves it
		}
		ns := p.nodes[pod.Node]
		if ns == nil || !ns.node.Draining {
			continue
		}
		if budgets == nil {
			budgets = p.disruptionBudgets()
		}
		if p.evictionAllowed(pod, budgets) {
			p.delete(pod, DeleteDrained, "")
		}
	}
}

// requestedDeletions deletes the pods an operator asked to delete, as
// kubectl delete pod does: their controllers replace them in this plan (a
// StatefulSet once the pod is gone; an OnDelete one with the new template),
// and a standalone Pod of git is made again.
func (p *planner) requestedDeletions() {
	if len(p.s.DeleteRequests) == 0 {
		return
	}
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if p.s.DeleteRequests[pod.UID] && !pod.Terminating && !p.isDeleted(pod) {
			p.delete(pod, DeleteRequested, "")
			p.event("Pod/"+pod.Namespace+"/"+pod.Name, EventNormal, "Deleted", "Deleted pod "+pod.Namespace+"/"+pod.Name+" (shoal delete pod)")
		}
	}
}

// disruptionBudget is a PodDisruptionBudget during a plan: the pods it
// selects that are healthy (Ready, not being deleted), and how many of them
// must stay.
type disruptionBudget struct {
	pdb      *manifests.PodDisruptionBudget
	sel      manifests.Selector
	healthy  int
	required int
}

// disruptionBudgets resolves the PodDisruptionBudgets of git against the
// pods, as Kubernetes' disruption controller does: minAvailable, or the
// selected pods less maxUnavailable (percentages of the selected pods).
func (p *planner) disruptionBudgets() []*disruptionBudget {
	out := []*disruptionBudget{}
	for _, o := range p.s.Objects {
		pdb, ok := o.(*manifests.PodDisruptionBudget)
		if !ok || pdb.Spec.Selector == nil {
			continue
		}
		sel, err := manifests.SelectorFromLabelSelector(pdb.Spec.Selector)
		if err != nil {
			continue
		}
		b := &disruptionBudget{pdb: pdb, sel: sel}
		expected := 0
		for i := range p.s.Pods {
			pod := &p.s.Pods[i]
			if pod.Namespace != pdb.Namespace || pod.Spec == nil || !sel.Matches(pod.Spec.Labels) || pod.Terminating ||
				pod.Phase == manifests.PodSucceeded || pod.Phase == manifests.PodFailed {
				continue
			}
			expected++
			if p.podReady(pod) && !p.isDeleted(pod) {
				b.healthy++
			}
		}
		switch s := pdb.Spec; {
		case s.MinAvailable != nil:
			b.required, _ = s.MinAvailable.ScaledValue(expected, true)
		case s.MaxUnavailable != nil:
			unavailable, _ := s.MaxUnavailable.ScaledValue(expected, true)
			b.required = max(expected-unavailable, 0)
		}
		out = append(out, b)
	}
	return out
}

// evictionAllowed reports whether the budgets that select pod allow it to
// be evicted now, and counts the disruption when they do. A pod that is
// not healthy disrupts nothing: it may go while the budget is met (policy
// IfHealthyBudget, the default) or always (AlwaysAllow).
func (p *planner) evictionAllowed(pod *Pod, budgets []*disruptionBudget) bool {
	healthy := p.podReady(pod)
	var mine []*disruptionBudget
	for _, b := range budgets {
		if b.pdb.Namespace != pod.Namespace || pod.Spec == nil || !b.sel.Matches(pod.Spec.Labels) {
			continue
		}
		switch {
		case healthy && b.healthy-1 < b.required:
			return false
		case !healthy && b.pdb.Spec.UnhealthyPodEvictionPolicy != "AlwaysAllow" && b.healthy < b.required:
			return false
		}
		mine = append(mine, b)
	}
	if healthy {
		for _, b := range mine {
			b.healthy--
		}
	}
	return true
}

// podCIDRs gives every ready node without a pod CIDR the lowest free /24
// of the cluster CIDR, nodes in order of name.
func (p *planner) podCIDRs() {
	if !p.s.ClusterCIDR.IsValid() {
		return
	}
	base := p.s.ClusterCIDR.Masked()
	used := make(map[netip.Prefix]bool, len(p.s.PodCIDRs))
	for _, c := range p.s.PodCIDRs {
		used[c] = true
	}
	nodes := make([]*Node, 0, len(p.nodeList))
	for i := range p.nodeList {
		n := &p.nodeList[i]
		if _, has := p.s.PodCIDRs[n.Name]; n.Ready && !has {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b *Node) int { return cmp.Compare(a.Name, b.Name) })
	next := 0 // the index of the first /24 that may be free
	for _, n := range nodes {
		cidr, ok := netip.Prefix{}, false
		for ; base.Addr().Is4() && base.Bits() <= 24 && next < 1<<(24-base.Bits()); next++ {
			c := nthSlash24(base, next)
			if !used[c] {
				cidr, ok = c, true
				used[c] = true
				next++
				break
			}
		}
		if !ok {
			p.plan.NoPodCIDR = append(p.plan.NoPodCIDR, n.Name)
			continue
		}
		if p.plan.PodCIDRs == nil {
			p.plan.PodCIDRs = map[string]netip.Prefix{}
		}
		p.plan.PodCIDRs[n.Name] = cidr
	}
}

// nthSlash24 is the i-th /24 of an IPv4 prefix of at most 24 bits.
func nthSlash24(base netip.Prefix, i int) netip.Prefix {
	b := base.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 24)
}
