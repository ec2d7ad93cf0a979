package netplane

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/netplane/dns"
)

// Config is the whole network state a node should have, besides its pods' own interfaces: the
// Services, the routes to the other nodes' pods and the host ports of its pods. Set makes the
// node hold exactly this, and nothing of an earlier Config that this one does not repeat.
type Config struct {
	// Services are the cluster's Services: their virtual IPs (ClusterIPs), node ports and
	// LoadBalancer ports, and their DNS names.
	Services []Service
	// Routes send other nodes' pod CIDRs to those nodes' addresses (host-gw).
	Routes []Route
	// HostPorts forward ports of the node to ports of its pods.
	HostPorts []HostPort
	// ReservedPorts are the TCP ports the daemon itself listens on at the node's address (the
	// cluster endpoint, the store, the API, webhooks): no LoadBalancer port is opened on them.
	ReservedPorts []uint16
}

// Proto is a transport protocol (an IANA protocol number).
type Proto uint8

// The protocols of Service ports and host ports.
const (
	TCP Proto = 6
	UDP Proto = 17
)

// String returns "TCP" or "UDP".
func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// Affinity is a Service's session affinity.
type Affinity uint8

const (
	// None spreads connections round-robin over the backends.
	None Affinity = iota
	// ClientIP sends every connection of one client to the same backend until the client has
	// been idle for the affinity timeout.
	ClientIP
)

// String returns "None" or "ClientIP".
func (a Affinity) String() string {
	switch a {
	case None:
		return "None"
	case ClientIP:
		return "ClientIP"
	}
	return fmt.Sprintf("Affinity(%d)", uint8(a))
}

// ServiceType is the type of a Service, as Kubernetes names it.
type ServiceType string

// The types of Services. ExternalName Services have no network state.
const (
	TypeClusterIP    ServiceType = "ClusterIP"
	TypeNodePort     ServiceType = "NodePort"
	TypeLoadBalancer ServiceType = "LoadBalancer"
)

// Service is one Service of the cluster with its ready endpoints.
type Service struct {
	Namespace string
	Name      string
	Type      ServiceType
	// ClusterIP is the virtual IP; the zero Addr when the Service has none (headless).
	ClusterIP netip.Addr
	// Headless Services resolve to their endpoints' addresses and have no virtual IP.
	Headless bool
	Ports    []ServicePort
	// Endpoints are the Service's ready pods.
	Endpoints []Endpoint
	Affinity  Affinity
	// AffinityTimeout is the idle time after which a ClientIP client is balanced again; zero
	// means the default of 3 hours (as in Kubernetes). It is rounded up to whole seconds.
	AffinityTimeout time.Duration
	// Pending is set on a LoadBalancer Service whose ports no node opens because another
	// LoadBalancer Service holds one of them.
	Pending bool
	// LocalTraffic (externalTrafficPolicy Local) sends what arrives at the node's node ports
	// and LoadBalancer ports only to the endpoints on this node (Endpoint.Local), with the
	// client's address kept; with none, new flows are dropped.
	LocalTraffic bool
}

// ServicePort is a port of a Service.
type ServicePort struct {
	// Name names the port; endpoints give their port for each name.
	Name  string
	Proto Proto
	Port  uint16
	// NodePort, when not 0, is also opened on the node's address.
	NodePort uint16
}

// Endpoint is a ready pod behind a Service.
type Endpoint struct {
	IP netip.Addr
	// Ports are the pod's ports by Service port name; a Service port whose name is missing has
	// no backend on this pod.
	Ports map[string]uint16
	// Hostname is the pod's hostname when its subdomain names the Service; a headless Service's
	// DNS names the pod <hostname>.<svc>.<ns>.svc.<domain> by it.
	Hostname string
	// Local is set on an endpoint on this node.
	Local bool
}

// Route sends another node's pod CIDR to that node's address.
type Route struct {
	CIDR netip.Prefix
	// Via is the other node's address; it must be on a network the node has an address in.
	Via netip.Addr
}

// String is "10.244.2.0/24 via 192.168.1.2".
func (r Route) String() string { return fmt.Sprintf("%s via %s", r.CIDR, r.Via) }

// HostPort forwards a port of the node to a port of one of its pods, as the CNI portmap plugin
// does for a container's hostPort.
type HostPort struct {
	// UID is the pod's UID; the pod's address is the one Setup gave it.
	UID string
	// Pod is "namespace/name", for messages.
	Pod   string
	Proto Proto
	// HostIP limits the port to one address of the node; the zero value or 0.0.0.0 means
	// every address of the node.
	HostIP   netip.Addr
	HostPort uint16
	PodPort  uint16
}

// State is the network state a plane holds, read back from where it lives (the kernel's maps,
// routing table and nftables, and the DNS server), in the form Set normalizes a Config into:
// every slice sorted, backends sorted and without duplicates, defaults filled in.
type State struct {
	// Frontends are the ports of virtual IPs the socket load balancer translates.
	Frontends []Frontend
	// NodePorts are the ports opened on the node's address: Services' node ports and the
	// ports of LoadBalancer Services.
	NodePorts []NodePort
	Routes    []Route
	// HostPorts are the host ports accepted, in the pod network's order (protocol, port,
	// address, pod).
	HostPorts []HostPort
	// DNS are the Services the DNS server answers for, as dns.Normalize orders them.
	DNS []dns.Service
}

// Frontend is one port of a virtual IP: connections to VIP:Port over Proto go to one of
// Backends.
type Frontend struct {
	VIP      netip.Addr
	Port     uint16
	Proto    Proto
	Backends []netip.AddrPort
	Affinity Affinity
	// AffinityTimeout is set, in whole seconds, with ClientIP affinity only.
	AffinityTimeout time.Duration
}

// String is "10.96.0.10:53/UDP".
func (f Frontend) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(f.VIP, f.Port), f.Proto)
}

func (f Frontend) key() frontendKey { return frontendKey{f.VIP, f.Port, f.Proto} }

// NodePort is a port of the node's address: traffic to it over Proto goes to one of Backends.
type NodePort struct {
	Port     uint16
	Proto    Proto
	Backends []netip.AddrPort
}

// String is ":30080/TCP".
func (n NodePort) String() string { return fmt.Sprintf(":%d/%s", n.Port, n.Proto) }

func (n NodePort) key() nodePortKey { return nodePortKey{n.Port, n.Proto} }

type frontendKey struct {
	vip   netip.Addr
	port  uint16
	proto Proto
}

type nodePortKey struct {
	port  uint16
	proto Proto
}

// Kind says which part of a Config a Problem is about.
type Kind string

// The kinds of Problems.
const (
	// KindService is a Service's virtual IP, its ports on it or its endpoints.
	KindService Kind = "service"
	// KindNodePort is a node port of a Service, or the node ports as a whole.
	KindNodePort Kind = "node port"
	// KindLoadBalancer is a port of a LoadBalancer Service on the node's address.
	KindLoadBalancer Kind = "LoadBalancer port"
	// KindDNS is a Service's DNS name.
	KindDNS Kind = "DNS name"
	// KindRoute is a route to another node's pods.
	KindRoute Kind = "route"
	// KindHostPort is a host port of a pod.
	KindHostPort Kind = "host port"
)

// Problem is a part of a Config that Set did not apply, and why.
type Problem struct {
	Kind Kind
	// Service is "namespace/name" for the kinds about Services.
	Service string
	// UID is the pod's UID for host ports.
	UID string
	// Item names what was not applied: "10.96.0.5:80/TCP", "7443/TCP", a route, a host port.
	Item   string
	Reason string
}

// String is "LoadBalancer port default/web 7443/TCP: the daemon listens on it".
func (p Problem) String() string {
	s := string(p.Kind)
	for _, part := range []string{p.Service, p.Item} {
		if part != "" {
			s += " " + part
		}
	}
	return s + ": " + p.Reason
}

// Result says what a Set did not apply. Everything it does not list was applied.
type Result struct {
	// Skipped are parts left out by rule, as the cluster expects them to be: a LoadBalancer
	// port the daemon listens on, or that is a node port, the ports of a pending
	// LoadBalancer Service, node ports on a node without a node interface.
	Skipped []Problem
	// Refused are parts that cannot be applied as given: invalid, or in conflict with another
	// part (a host port another pod holds, a virtual IP port two Services claim). Repeating
	// the Set refuses them again.
	Refused []Problem
	// Failed are parts the kernel did not take; Set returned an error that says why, and a
	// later Set tries them again.
	Failed []Problem
}

// HostPortsRefused returns, by pod UID, why host ports of that pod were refused or failed.
func (r Result) HostPortsRefused() map[string]string {
	out := map[string]string{}
	for _, list := range [][]Problem{r.Refused, r.Failed} {
		for _, p := range list {
			if p.Kind == KindHostPort && p.UID != "" {
				if prev, ok := out[p.UID]; ok {
					out[p.UID] = prev + "; " + p.Reason
				} else {
					out[p.UID] = p.Reason
				}
			}
		}
	}
	return out
}

// sortFrontends sorts by address, port and protocol.
func sortFrontends(fs []Frontend) {
	slices.SortFunc(fs, func(a, b Frontend) int {
		return cmp.Or(a.VIP.Compare(b.VIP), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
}

// sortNodePorts sorts by port and protocol.
func sortNodePorts(ns []NodePort) {
	slices.SortFunc(ns, func(a, b NodePort) int { return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto)) })
}

// sortRoutes sorts by CIDR.
func sortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int {
		return cmp.Or(a.CIDR.Addr().Compare(b.CIDR.Addr()), cmp.Compare(a.CIDR.Bits(), b.CIDR.Bits()))
	})
}

// sortedBackends returns the backends sorted and without duplicates; nil when there are none.
func sortedBackends(bs []netip.AddrPort) []netip.AddrPort {
	if len(bs) == 0 {
		return nil
	}
	out := slices.Clone(bs)
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(out)
}
