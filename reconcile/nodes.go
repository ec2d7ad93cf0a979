package reconcile

import (
	"cmp"
	"net/netip"
	"slices"
)

// drain deletes the Deployment pods of draining nodes, so that the
// Deployments replace them elsewhere in this plan. Standalone pods stay, as
// kubectl drain leaves unmanaged pods without --force.
func (p *planner) drain() {
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if pod.Owner == "" || pod.Node == "" || pod.Terminating || p.isDeleted(pod) || p.nodeLost(pod) {
			continue
		}
		if ns := p.nodes[pod.Node]; ns != nil && ns.node.Draining {
			p.delete(pod, DeleteDrained, "")
		}
	}
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
	nodes := make([]*Node, 0, len(p.s.Nodes))
	for i := range p.s.Nodes {
		n := &p.s.Nodes[i]
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
