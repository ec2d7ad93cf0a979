package netplane

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/netplane/dns"
	"github.com/shoal-dev/shoal/netplane/lb"
	"github.com/shoal-dev/shoal/netplane/nodeport"
	"github.com/shoal-dev/shoal/netplane/podnet"
)

// node is what planning needs to know of the node a plane runs on.
type node struct {
	podCIDR     netip.Prefix
	serviceCIDR netip.Prefix
	// nodePorts is set when the node serves node ports (it has a node interface).
	nodePorts bool
}

// planned is the state a Config asks for, less what the rules leave out.
type planned struct {
	want State // HostPorts unresolved: the pod network decides with its history
	res  Result
	// owner names the Service of each frontend and node port ("namespace/name").
	owner map[string]string
}

// plan turns a Config into the State a plane must hold: every port of a Service with a virtual
// IP on that IP; every node port; every port of a LoadBalancer Service on the node's address
// with the same backends, unless the Service is pending, the port is a TCP port the daemon
// listens on, or a node port holds it; the routes; the DNS records. It is pure: the fake and
// the kernel plane plan alike.
func plan(c Config, n node) planned {
	p := planned{owner: map[string]string{}}
	svcs := slices.Clone(c.Services)
	slices.SortStableFunc(svcs, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	frontends := map[frontendKey]string{}
	nodePorts := map[nodePortKey]string{}
	type lbPort struct {
		svc string
		np  NodePort
	}
	var lbPorts []lbPort
	refuse := func(k Kind, svc, item, why string) {
		p.res.Refused = append(p.res.Refused, Problem{Kind: k, Service: svc, Item: item, Reason: why})
	}
	for _, s := range svcs {
		name := s.Namespace + "/" + s.Name
		p.want.DNS = append(p.want.DNS, dnsRecord(s))
		if !s.ClusterIP.IsValid() || s.Headless {
			continue
		}
		vip := s.ClusterIP.Unmap()
		if !vip.Is4() {
			refuse(KindService, name, vip.String(), "the virtual IP must be an IPv4 address")
			continue
		}
		affinity, timeout, err := affinityOf(s)
		if err != nil {
			refuse(KindService, name, vip.String(), err.Error())
			continue
		}
		var bad []string
		for _, e := range s.Endpoints {
			if !e.IP.Unmap().Is4() {
				bad = append(bad, fmt.Sprintf("endpoint %s", e.IP))
			}
		}
		for _, b := range bad {
			refuse(KindService, name, b, "endpoints must have an IPv4 address")
		}
		for _, sp := range s.Ports {
			fe := Frontend{VIP: vip, Port: sp.Port, Proto: sp.Proto, Affinity: affinity, AffinityTimeout: timeout}
			item := fe.String()
			switch {
			case sp.Proto != TCP && sp.Proto != UDP:
				refuse(KindService, name, item, "the protocol must be TCP or UDP")
				continue
			case sp.Port == 0:
				refuse(KindService, name, item, "the port must not be 0")
				continue
			}
			fe.Backends = backendsOf(s, sp)
			if other, taken := frontends[fe.key()]; taken {
				refuse(KindService, name, item, "Service "+other+" has the same virtual IP and port")
				continue
			}
			switch {
			case len(fe.Backends) > lb.MaxBackendsPerService:
				refuse(KindService, name, item, fmt.Sprintf("%d backends, at most %d are supported", len(fe.Backends), lb.MaxBackendsPerService))
				continue
			case len(frontends) >= lb.MaxServices:
				refuse(KindService, name, item, fmt.Sprintf("the load balancer holds at most %d Service ports", lb.MaxServices))
				continue
			}
			frontends[fe.key()] = name
			p.owner[item] = name
			p.want.Frontends = append(p.want.Frontends, fe)
			external := fe.Backends
			if s.LocalTraffic {
				external = localBackendsOf(s, sp)
			}
			if sp.NodePort != 0 {
				np := NodePort{Port: sp.NodePort, Proto: sp.Proto, Backends: external}
				switch other, taken := nodePorts[np.key()]; {
				case taken:
					refuse(KindNodePort, name, portItem(np), "it is also a node port of Service "+other)
				case len(np.Backends) > nodeport.MaxBackendsPerService:
					refuse(KindNodePort, name, portItem(np), fmt.Sprintf("%d backends, at most %d are supported", len(np.Backends), nodeport.MaxBackendsPerService))
				default:
					nodePorts[np.key()] = name
					p.owner[np.String()] = name
					p.want.NodePorts = append(p.want.NodePorts, np)
				}
			}
			if s.Type == TypeLoadBalancer {
				np := NodePort{Port: sp.Port, Proto: sp.Proto, Backends: external}
				if s.Pending {
					p.res.Skipped = append(p.res.Skipped, Problem{Kind: KindLoadBalancer, Service: name, Item: portItem(np),
						Reason: "pending: another LoadBalancer Service holds one of its ports"})
					continue
				}
				lbPorts = append(lbPorts, lbPort{name, np})
			}
		}
	}
	// Node ports first: validation keeps a LoadBalancer port off every explicit node port and
	// allocation off every LoadBalancer port, so a clash is a leftover of an older plan.
	held := map[nodePortKey]string{} // LoadBalancer ports by the Service that has them
	for _, l := range lbPorts {
		k, why := l.np.key(), ""
		if l.np.Proto == TCP && slices.Contains(c.ReservedPorts, l.np.Port) {
			why = "the daemon listens on it"
		} else if other, ok := nodePorts[k]; ok {
			why = "it is a node port of Service " + other
		} else if other, ok := held[k]; ok {
			why = "LoadBalancer Service " + other + " holds it"
		}
		if why != "" {
			p.res.Skipped = append(p.res.Skipped, Problem{Kind: KindLoadBalancer, Service: l.svc, Item: portItem(l.np), Reason: why})
			continue
		}
		if len(l.np.Backends) > nodeport.MaxBackendsPerService {
			refuse(KindLoadBalancer, l.svc, portItem(l.np), fmt.Sprintf("%d backends, at most %d are supported", len(l.np.Backends), nodeport.MaxBackendsPerService))
			continue
		}
		held[k] = l.svc
		p.owner[l.np.String()] = l.svc
		p.want.NodePorts = append(p.want.NodePorts, l.np)
	}
	if len(p.want.NodePorts) > nodeport.MaxServices {
		for _, np := range p.want.NodePorts[nodeport.MaxServices:] {
			refuse(KindNodePort, p.owner[np.String()], portItem(np), fmt.Sprintf("the node holds at most %d node ports and LoadBalancer ports", nodeport.MaxServices))
		}
		p.want.NodePorts = p.want.NodePorts[:nodeport.MaxServices]
	}
	if !n.nodePorts {
		// Nothing is opened on the node's address: what the rules would skip does not matter.
		opened := len(p.want.NodePorts)
		p.want.NodePorts = nil
		p.res.Skipped = slices.DeleteFunc(p.res.Skipped, func(pr Problem) bool { return pr.Kind == KindLoadBalancer })
		p.res.Refused = slices.DeleteFunc(p.res.Refused, func(pr Problem) bool { return pr.Kind == KindNodePort || pr.Kind == KindLoadBalancer })
		if opened > 0 {
			p.res.Skipped = append(p.res.Skipped, Problem{Kind: KindNodePort,
				Reason: fmt.Sprintf("%d node ports and LoadBalancer ports are not opened: the node has no node interface (start the daemon with --node-interface and --node-address to serve them)", opened)})
		}
	}
	sortFrontends(p.want.Frontends)
	sortNodePorts(p.want.NodePorts)
	kept, skipped := dns.Normalize(p.want.DNS)
	p.want.DNS = normalDNS(kept)
	for _, s := range skipped {
		refuse(KindDNS, s.Namespace+"/"+s.Name, "", "the namespace and the name must be DNS labels (lowercase letters, digits and '-', at most 63)")
	}
	p.want.Routes = planRoutes(c.Routes, n, &p.res)
	return p
}

// portItem is "7443/TCP".
func portItem(np NodePort) string { return fmt.Sprintf("%d/%s", np.Port, np.Proto) }

// affinityOf checks and normalizes a Service's affinity: the timeout is whole seconds, 3 hours
// when not set, and zero without affinity.
func affinityOf(s Service) (Affinity, time.Duration, error) {
	switch s.Affinity {
	case None:
		return None, 0, nil
	case ClientIP:
		t := s.AffinityTimeout
		if t == 0 {
			t = lb.DefaultAffinityTimeout
		}
		if t < 0 || t > lb.MaxAffinityTimeout {
			return 0, 0, fmt.Errorf("the affinity timeout %s is outside 1s..%s", s.AffinityTimeout, lb.MaxAffinityTimeout)
		}
		return ClientIP, (t + time.Second - 1) / time.Second * time.Second, nil
	}
	return 0, 0, fmt.Errorf("the affinity %s is neither None nor ClientIP", s.Affinity)
}

// backendsOf returns the backends of port sp of s: every IPv4 endpoint with a port for sp's
// name, sorted and without duplicates.
func backendsOf(s Service, sp ServicePort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, e := range s.Endpoints {
		ip := e.IP.Unmap()
		target, ok := e.Ports[sp.Name]
		if !ip.Is4() || !ok || target == 0 {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, target))
	}
	return sortedBackends(out)
}

// localBackendsOf is backendsOf for the endpoints on this node only.
func localBackendsOf(s Service, sp ServicePort) []netip.AddrPort {
	local := s
	local.Endpoints = slices.DeleteFunc(slices.Clone(s.Endpoints), func(e Endpoint) bool { return !e.Local })
	return backendsOf(local, sp)
}

// dnsRecord is what the DNS server knows of s.
func dnsRecord(s Service) dns.Service {
	rec := dns.Service{Namespace: s.Namespace, Name: s.Name, Headless: s.Headless}
	if !s.Headless && s.ClusterIP.IsValid() {
		rec.ClusterIP = s.ClusterIP.Unmap()
	}
	for _, p := range s.Ports {
		rec.Ports = append(rec.Ports, dns.Port{Name: p.Name, Protocol: p.Proto.String(), Port: p.Port})
	}
	var eps []netip.Addr
	for _, e := range s.Endpoints {
		if !e.IP.IsValid() {
			continue
		}
		eps = append(eps, e.IP.Unmap())
		if e.Hostname != "" {
			rec.Hostnames = append(rec.Hostnames, dns.Hostname{Name: e.Hostname, Addr: e.IP.Unmap()})
		}
	}
	slices.SortFunc(eps, netip.Addr.Compare)
	rec.Endpoints = slices.Compact(eps)
	slices.SortFunc(rec.Hostnames, func(a, b dns.Hostname) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), a.Addr.Compare(b.Addr))
	})
	rec.Hostnames = slices.Compact(rec.Hostnames)
	return rec
}

// planRoutes checks the routes as the pod network does and returns those it takes, sorted.
func planRoutes(routes []Route, n node, res *Result) []Route {
	byCIDR := map[netip.Prefix]netip.Addr{}
	var out []Route
	for _, r := range routes {
		why := ""
		cidr := r.CIDR.Masked()
		via := r.Via.Unmap()
		switch {
		case !r.CIDR.IsValid() || !r.CIDR.Addr().Is4():
			why = "the pod CIDR must be an IPv4 prefix"
		case !via.Is4():
			why = "the node address must be an IPv4 address"
		case n.podCIDR.IsValid() && cidr.Overlaps(n.podCIDR):
			why = fmt.Sprintf("it overlaps this node's own pod CIDR %s", n.podCIDR)
		case n.serviceCIDR.IsValid() && cidr.Overlaps(n.serviceCIDR):
			why = fmt.Sprintf("it overlaps the service CIDR %s", n.serviceCIDR)
		case n.podCIDR.IsValid() && n.podCIDR.Contains(via):
			why = fmt.Sprintf("the node address is inside this node's pod CIDR %s", n.podCIDR)
		}
		if prev, dup := byCIDR[cidr]; why == "" && dup {
			if prev == via {
				continue
			}
			why = fmt.Sprintf("the pod CIDR is routed via %s already: each node needs its own pod CIDR", prev)
		}
		if why != "" {
			res.Refused = append(res.Refused, Problem{Kind: KindRoute, Item: r.String(), Reason: why})
			continue
		}
		byCIDR[cidr] = via
		out = append(out, Route{CIDR: cidr, Via: via})
	}
	sortRoutes(out)
	return out
}

// toPodnet converts host ports for the pod network.
func toPodnet(hps []HostPort) []podnet.HostPort {
	out := make([]podnet.HostPort, 0, len(hps))
	for _, h := range hps {
		out = append(out, podnet.HostPort{UID: h.UID, Pod: h.Pod, Protocol: h.Proto.String(), HostIP: h.HostIP, HostPort: h.HostPort, PodPort: h.PodPort})
	}
	return out
}

// fromPodnet converts host ports back.
func fromPodnet(hps []podnet.HostPort) []HostPort {
	var out []HostPort
	for _, h := range hps {
		proto := TCP
		if h.Protocol == podnet.ProtoUDP {
			proto = UDP
		}
		out = append(out, HostPort{UID: h.UID, Pod: h.Pod, Proto: proto, HostIP: h.HostIP, HostPort: h.HostPort, PodPort: h.PodPort})
	}
	return out
}

// hostPortProblems turns the pod network's refusals into Problems.
func hostPortProblems(refused []podnet.RefusedHostPort) []Problem {
	var out []Problem
	for _, r := range refused {
		out = append(out, Problem{Kind: KindHostPort, UID: r.UID, Item: r.String(), Reason: r.Reason})
	}
	return out
}

// normalDNS is recs with no records as nil, as State has it.
func normalDNS(recs []dns.Service) []dns.Service {
	if len(recs) == 0 {
		return nil
	}
	return recs
}
