package reconcile

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/shoal-dev/shoal/manifests"
)

// ServiceState is what the network plane needs of a Service: its virtual IP, its ports and the
// addresses of the ready pods it selects. The master stores it as the Service's record; every
// node's network plane and DNS server read it.
type ServiceState struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// ClusterIP is the virtual IP; invalid for a headless Service (clusterIP: None).
	ClusterIP       netip.Addr                `json:"clusterIP,omitzero"`
	Headless        bool                      `json:"headless,omitempty"`
	Type            manifests.ServiceType     `json:"type"`
	SessionAffinity manifests.ServiceAffinity `json:"sessionAffinity,omitempty"`
	AffinityTimeout int32                     `json:"affinityTimeoutSeconds,omitempty"`
	Ports           []ServicePortState        `json:"ports"`
	// Endpoints are the ready pods the selector matches, sorted by IP.
	Endpoints []Endpoint `json:"endpoints"`
	// Ingress are the addresses a LoadBalancer Service's ports are opened on, sorted: the
	// LoadBalancerAddr of every node that has one and reserves none of the Service's TCP ports.
	// It is empty for a pending Service and nil for the other types.
	Ingress []netip.Addr `json:"ingress,omitempty"`
	// Pending is set on a LoadBalancer Service whose ports are not opened on the nodes'
	// addresses, because another LoadBalancer Service holds one of them.
	Pending bool `json:"pending,omitempty"`
	// LocalTraffic is externalTrafficPolicy Local: a node port or LoadBalancer port balances
	// over the pods of the node the traffic arrives at only, and a LoadBalancer's ingress lists
	// only the nodes with a ready pod of the Service.
	LocalTraffic bool `json:"localTraffic,omitempty"`
}

// ServicePortState is one port of a Service with the target resolved per endpoint.
type ServicePortState struct {
	Name     string             `json:"name,omitempty"`
	Protocol manifests.Protocol `json:"protocol"`
	Port     int32              `json:"port"`
	NodePort int32              `json:"nodePort,omitempty"`
	// TargetPort is the number, or the name of a container port (resolved per pod in
	// Endpoint.Ports).
	TargetPort manifests.IntOrString `json:"targetPort,omitzero"`
}

// Endpoint is a ready pod behind a Service.
type Endpoint struct {
	IP    netip.Addr       `json:"ip"`
	Node  string           `json:"node"`
	Pod   string           `json:"pod"`   // namespace/name
	Ports map[string]int32 `json:"ports"` // by Service port name: the pod's port for it
	// Hostname is the pod's spec.hostname when its spec.subdomain names the Service, as
	// Kubernetes' endpoints controller sets it; a headless Service's DNS names the pod
	// <hostname>.<service>.<namespace>.svc.<cluster domain> by it.
	Hostname string `json:"hostname,omitempty"`
}

// NodePortRange is where NodePort Services get their ports when spec.ports[].nodePort is unset.
const (
	NodePortMin = 30000
	NodePortMax = 32767
)

// ServicePlan is the outcome of Services.
type ServicePlan struct {
	Services []ServiceState
	// Allocated maps every virtual IP in use to its Service (namespace/name), to be stored.
	Allocated map[netip.Addr]string
	// Errors are Services that cannot get an address (the CIDR is full, or spec.clusterIP is taken
	// or outside it); they are left without one.
	Errors []string
}

// PodAddr is what Services needs of a pod: its address and readiness.
type PodAddr struct {
	Pod  *manifests.Pod
	IP   netip.Addr
	Node string
	// Ready pods serve; Terminating ones do not.
	Ready, Terminating bool
}

// Services gives every Service of the desired objects a virtual IP from cidr — keeping the one it
// already has (allocated), honouring spec.clusterIP — and its endpoints among the pods. It is
// pure and deterministic: allocations go to the lowest free address, Services in order of
// namespace and name.
//
// NodePort and LoadBalancer Services get a node port for each port that does not name one: the
// one they had (nodePorts, keyed "namespace/name/port name"), or the lowest free one of the node
// port range. A port that a LoadBalancer Service opens on every node (its spec.ports[].port) is
// never given as a node port.
//
// Two LoadBalancer Services cannot open the same port and protocol on the nodes: the one that
// held it keeps it (served lists, by namespace/name, the LoadBalancer Services that were not
// pending), else the first by namespace and name gets it, and the other stays Pending, as k3s's
// ServiceLB leaves the second Service's load balancer unscheduled.
//
// A LoadBalancer Service's ingress lists the nodes that open its ports, as k3s's ServiceLB lists
// the nodes that run its load balancer: every node with a LoadBalancerAddr, except one whose
// daemon listens on one of the Service's TCP ports (that node leaves the port closed).
func Services(objects []manifests.Object, pods []PodAddr, nodes []Node, allocated map[netip.Addr]string, nodePorts map[string]int32, served map[string]bool, cidr netip.Prefix) ServicePlan {
	plan := ServicePlan{Allocated: map[netip.Addr]string{}}
	var svcs []*manifests.Service
	for _, o := range objects {
		if s, ok := o.(*manifests.Service); ok {
			svcs = append(svcs, s)
		}
	}
	slices.SortFunc(svcs, func(a, b *manifests.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	have := map[string]netip.Addr{}
	for ip, owner := range allocated {
		have[owner] = ip
	}
	used := map[netip.Addr]bool{}
	// First the Services that keep their address or ask for one, then the others.
	ips := map[string]netip.Addr{}
	for _, s := range svcs {
		key := s.Namespace + "/" + s.Name
		want := s.Spec.ClusterIP
		switch {
		case want == "None":
			continue
		case want != "":
			ip, err := netip.ParseAddr(want)
			if err != nil || !cidr.Contains(ip) {
				plan.Errors = append(plan.Errors, fmt.Sprintf("Service %s: clusterIP %s is not in the service CIDR %s", key, want, cidr))
				continue
			}
			if used[ip] {
				plan.Errors = append(plan.Errors, fmt.Sprintf("Service %s: clusterIP %s is already allocated", key, want))
				continue
			}
			used[ip], ips[key] = true, ip
		default:
			if ip, ok := have[key]; ok && cidr.Contains(ip) && !used[ip] {
				used[ip], ips[key] = true, ip
			}
		}
	}
	next := cidr.Masked().Addr().Next() // .0 is the network; .1 is the first Service
	for _, s := range svcs {
		key := s.Namespace + "/" + s.Name
		if s.Spec.ClusterIP == "None" || ips[key].IsValid() || s.Spec.ClusterIP != "" {
			continue
		}
		for next.IsValid() && cidr.Contains(next) && used[next] {
			next = next.Next()
		}
		if !next.IsValid() || !cidr.Contains(next) || isBroadcast(next, cidr) {
			plan.Errors = append(plan.Errors, fmt.Sprintf("Service %s: the service CIDR %s is full", key, cidr))
			continue
		}
		used[next], ips[key] = true, next
	}
	// Node ports: those asked for in spec and those kept first, then the rest, lowest free. The
	// ports LoadBalancer Services open on every node are never allocated, and a kept node port
	// that one of them now uses is given up.
	usedPorts := map[int32]bool{}
	for _, s := range svcs {
		if s.Spec.Type == manifests.ServiceTypeLoadBalancer {
			for _, p := range s.Spec.Ports {
				usedPorts[p.Port] = true
			}
		}
	}
	ports := map[string]int32{}
	for _, s := range svcs {
		if !s.Spec.Type.HasNodePorts() {
			continue
		}
		for _, p := range s.Spec.Ports {
			key := s.Namespace + "/" + s.Name + "/" + p.Name
			switch {
			case p.NodePort != 0:
				usedPorts[p.NodePort], ports[key] = true, p.NodePort
			case nodePorts[key] != 0 && !usedPorts[nodePorts[key]]:
				usedPorts[nodePorts[key]], ports[key] = true, nodePorts[key]
			}
		}
	}
	nextPort := int32(NodePortMin)
	for _, s := range svcs {
		if !s.Spec.Type.HasNodePorts() {
			continue
		}
		for _, p := range s.Spec.Ports {
			key := s.Namespace + "/" + s.Name + "/" + p.Name
			if ports[key] != 0 {
				continue
			}
			for nextPort <= NodePortMax && usedPorts[nextPort] {
				nextPort++
			}
			if nextPort > NodePortMax {
				plan.Errors = append(plan.Errors, fmt.Sprintf("Service %s/%s: no node port left in %d-%d", s.Namespace, s.Name, NodePortMin, NodePortMax))
				continue
			}
			usedPorts[nextPort], ports[key] = true, nextPort
		}
	}
	pending := pendingLoadBalancers(svcs, served)
	for _, s := range svcs {
		key := s.Namespace + "/" + s.Name
		st := ServiceState{Pending: pending[key], Namespace: s.Namespace, Name: s.Name, Headless: s.Spec.ClusterIP == "None", Type: s.Spec.Type,
			SessionAffinity: s.Spec.SessionAffinity, ClusterIP: ips[key]}
		if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			st.AffinityTimeout = *c.ClientIP.TimeoutSeconds
		}
		if st.ClusterIP.IsValid() {
			plan.Allocated[st.ClusterIP] = key
		}
		for _, p := range s.Spec.Ports {
			st.Ports = append(st.Ports, ServicePortState{Name: p.Name, Protocol: p.Protocol, Port: p.Port, NodePort: ports[key+"/"+p.Name], TargetPort: p.TargetPort})
		}
		if len(s.Spec.Selector) > 0 {
			for _, p := range pods {
				if p.Pod == nil || p.Pod.Namespace != s.Namespace || (!p.Ready && !s.Spec.PublishNotReadyAddresses) || p.Terminating || !p.IP.IsValid() ||
					!labelsMatch(s.Spec.Selector, p.Pod.Labels) {
					continue
				}
				ep := Endpoint{IP: p.IP, Node: p.Node, Pod: p.Pod.Namespace + "/" + p.Pod.Name, Ports: map[string]int32{}}
				if p.Pod.Spec.Hostname != "" && p.Pod.Spec.Subdomain == s.Name {
					ep.Hostname = p.Pod.Spec.Hostname
				}
				for _, sp := range st.Ports {
					if port, ok := targetPort(p.Pod, sp); ok {
						ep.Ports[sp.Name] = port
					}
				}
				st.Endpoints = append(st.Endpoints, ep)
			}
			slices.SortFunc(st.Endpoints, func(a, b Endpoint) int { return a.IP.Compare(b.IP) })
		}
		st.LocalTraffic = s.Spec.ExternalTrafficPolicy == manifests.ExternalTrafficLocal
		st.Ingress = loadBalancerIngress(st, nodes)
		plan.Services = append(plan.Services, st)
	}
	return plan
}

// loadBalancerIngress lists the addresses the LoadBalancer Service s is reachable on, sorted:
// empty for a pending one, nil for the other types.
func loadBalancerIngress(s ServiceState, nodes []Node) []netip.Addr {
	if s.Type != manifests.ServiceTypeLoadBalancer {
		return nil
	}
	out := []netip.Addr{}
	if s.Pending {
		return out
	}
	for _, n := range nodes {
		if s.LocalTraffic && !slices.ContainsFunc(s.Endpoints, func(e Endpoint) bool { return e.Node == n.Name }) {
			continue // no pod of the Service to send this node's traffic to
		}
		if !n.LoadBalancerAddr.IsValid() || slices.ContainsFunc(s.Ports, func(p ServicePortState) bool {
			return p.Protocol == manifests.ProtocolTCP && slices.Contains(n.ReservedPorts, p.Port)
		}) {
			continue
		}
		out = append(out, n.LoadBalancerAddr)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// pendingLoadBalancers returns the LoadBalancer Services (by namespace/name) that cannot open
// their ports because another one holds one of them: those in served take their ports first,
// then the others, each group in the order of svcs.
func pendingLoadBalancers(svcs []*manifests.Service, served map[string]bool) map[string]bool {
	type portKey struct {
		port  int32
		proto manifests.Protocol
	}
	taken := map[portKey]bool{}
	pending := map[string]bool{}
	for _, first := range []bool{true, false} {
		for _, s := range svcs {
			key := s.Namespace + "/" + s.Name
			if s.Spec.Type != manifests.ServiceTypeLoadBalancer || served[key] != first {
				continue
			}
			if slices.ContainsFunc(s.Spec.Ports, func(p manifests.ServicePort) bool { return taken[portKey{p.Port, p.Protocol}] }) {
				pending[key] = true
				continue
			}
			for _, p := range s.Spec.Ports {
				taken[portKey{p.Port, p.Protocol}] = true
			}
		}
	}
	return pending
}

func isBroadcast(ip netip.Addr, cidr netip.Prefix) bool {
	return ip.Is4() && !cidr.Contains(ip.Next())
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// targetPort resolves a Service port's target on a pod: a number as is, a name through the
// pod's container ports.
func targetPort(pod *manifests.Pod, sp ServicePortState) (int32, bool) {
	if sp.TargetPort.Type == manifests.Int {
		if sp.TargetPort.IntVal == 0 {
			return sp.Port, true
		}
		return sp.TargetPort.IntVal, true
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == sp.TargetPort.StrVal && (cp.Protocol == sp.Protocol || cp.Protocol == "") {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}
