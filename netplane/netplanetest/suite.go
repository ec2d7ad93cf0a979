// Package netplanetest is the conformance suite of netplane.Plane: every implementation (the
// Kernel plane in the kernel, the in-memory Fake) must pass Run, so that what callers learn
// against the fake holds against the kernel: the same normalization of a Config into a State,
// the same rules for what is skipped and refused, the same Result, Set idempotent and
// converging.
package netplanetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/netplane"
	"github.com/shoal-dev/shoal/netplane/dns"
)

// The node the suite expects the plane to be opened for.
var (
	// PodCIDR is the node's pod CIDR.
	PodCIDR = netip.MustParsePrefix("10.244.0.0/24")
	// ServiceCIDR is the cluster's service CIDR.
	ServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	// NodeNet is the network the node shares with the other nodes: routes go via its
	// addresses, so the node must have an address in it (NodeIP).
	NodeNet = netip.MustParsePrefix("192.168.77.0/24")
	// NodeIP is the node's address in NodeNet; the node interface, when there is one, holds it.
	NodeIP = netip.MustParseAddr("192.168.77.1")
)

// Options say what kind of plane a case needs.
type Options struct {
	// NodePorts asks for a plane that opens node ports and LoadBalancer ports: one with a node
	// interface holding NodeIP.
	NodePorts bool
}

// Run runs the suite. open returns a new, empty plane for the node described above, which it
// closes and removes when the test ends.
func Run(t *testing.T, open func(t *testing.T, o Options) netplane.Plane) {
	cases := []struct {
		name string
		opts Options
		run  func(t *testing.T, p netplane.Plane)
	}{
		{"SetThenState", Options{NodePorts: true}, testSetThenState},
		{"SetTwiceChangesNothing", Options{NodePorts: true}, testSetTwice},
		{"Backends", Options{NodePorts: true}, testBackends},
		{"ServiceRemoved", Options{NodePorts: true}, testServiceRemoved},
		{"Hostnames", Options{NodePorts: true}, testHostnames},
		{"LocalTraffic", Options{NodePorts: true}, testLocalTraffic},
		{"Affinity", Options{NodePorts: true}, testAffinity},
		{"NodePorts", Options{NodePorts: true}, testNodePorts},
		{"LoadBalancerPorts", Options{NodePorts: true}, testLoadBalancerPorts},
		{"Routes", Options{NodePorts: true}, testRoutes},
		{"HostPorts", Options{NodePorts: true}, testHostPorts},
		{"Refused", Options{NodePorts: true}, testRefused},
		{"EmptyConfigRemovesEverything", Options{NodePorts: true}, testEmptyConfig},
		{"WithoutNodeInterface", Options{}, testWithoutNodeInterface},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := open(t, tc.opts)
			tc.run(t, p)
		})
	}
}

func addr(s string) netip.Addr         { return netip.MustParseAddr(s) }
func ap(s string) netip.AddrPort       { return netip.MustParseAddrPort(s) }
func aps(s ...string) []netip.AddrPort { return mapSlice(s, ap) }
func addrs(s ...string) []netip.Addr   { return mapSlice(s, addr) }

func mapSlice[T any](in []string, f func(string) T) []T {
	if len(in) == 0 {
		return nil
	}
	out := make([]T, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

// Pods of this node (10.244.0.0/24) and of another (10.244.1.0/24).
const (
	pod1 = "10.244.0.2"
	pod2 = "10.244.0.3"
	pod3 = "10.244.1.5"
)

// web is a ClusterIP Service with a TCP and a UDP port; pod1 serves only http.
func web() netplane.Service {
	return netplane.Service{Namespace: "default", Name: "web", Type: netplane.TypeClusterIP, ClusterIP: addr("10.96.0.10"),
		Ports: []netplane.ServicePort{{Name: "http", Proto: netplane.TCP, Port: 80}, {Name: "dns", Proto: netplane.UDP, Port: 53}},
		Endpoints: []netplane.Endpoint{
			{IP: addr(pod2), Ports: map[string]uint16{"http": 8080, "dns": 5353}},
			{IP: addr(pod1), Ports: map[string]uint16{"http": 8080}},
		}}
}

var webFrontends = []netplane.Frontend{
	{VIP: addr("10.96.0.10"), Port: 53, Proto: netplane.UDP, Backends: aps(pod2 + ":5353")},
	{VIP: addr("10.96.0.10"), Port: 80, Proto: netplane.TCP, Backends: aps(pod1+":8080", pod2+":8080")},
}

var webDNS = dns.Service{Namespace: "default", Name: "web", ClusterIP: addr("10.96.0.10"),
	Ports: []dns.Port{{Name: "http", Protocol: "TCP", Port: 80}, {Name: "dns", Protocol: "UDP", Port: 53}}, Endpoints: addrs(pod1, pod2)}

// api is a NodePort Service whose pod is on another node.
func api() netplane.Service {
	return netplane.Service{Namespace: "default", Name: "api", Type: netplane.TypeNodePort, ClusterIP: addr("10.96.0.11"),
		Ports:     []netplane.ServicePort{{Name: "https", Proto: netplane.TCP, Port: 443, NodePort: 30443}},
		Endpoints: []netplane.Endpoint{{IP: addr(pod3), Ports: map[string]uint16{"https": 8443}}}}
}

var apiDNS = dns.Service{Namespace: "default", Name: "api", ClusterIP: addr("10.96.0.11"),
	Ports: []dns.Port{{Name: "https", Protocol: "TCP", Port: 443}}, Endpoints: addrs(pod3)}

// lbService is a LoadBalancer Service in namespace shop with one port.
func lbService(name, vip string, port, nodePort uint16, proto netplane.Proto) netplane.Service {
	return netplane.Service{Namespace: "shop", Name: name, Type: netplane.TypeLoadBalancer, ClusterIP: addr(vip),
		Ports:     []netplane.ServicePort{{Name: "http", Proto: proto, Port: port, NodePort: nodePort}},
		Endpoints: []netplane.Endpoint{{IP: addr(pod1), Ports: map[string]uint16{"http": 8080}}}}
}

func lbDNS(name, vip string, port uint16, proto netplane.Proto) dns.Service {
	return dns.Service{Namespace: "shop", Name: name, ClusterIP: addr(vip), Ports: []dns.Port{{Name: "http", Protocol: proto.String(), Port: port}},
		Endpoints: addrs(pod1)}
}

func hostPort(uid string, proto netplane.Proto, hostIP string, port, podPort uint16) netplane.HostPort {
	h := netplane.HostPort{UID: uid, Pod: "default/" + uid, Proto: proto, HostPort: port, PodPort: podPort}
	if hostIP != "" {
		h.HostIP = addr(hostIP)
	}
	return h
}

func route(cidr, via string) netplane.Route {
	return netplane.Route{CIDR: netip.MustParsePrefix(cidr), Via: addr(via)}
}

// set applies c and fails the test on an error.
func set(t *testing.T, p netplane.Plane, c netplane.Config) netplane.Result {
	t.Helper()
	res, err := p.Set(context.Background(), c)
	if err != nil {
		t.Fatalf("Set: %v (result %+v)", err, res)
	}
	return res
}

// checkState compares what the plane holds with want, part by part.
func checkState(t *testing.T, p netplane.Plane, want netplane.State) netplane.State {
	t.Helper()
	got, err := p.State(context.Background())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	parts := []struct {
		name      string
		got, want any
	}{
		{"Frontends", got.Frontends, want.Frontends},
		{"NodePorts", got.NodePorts, want.NodePorts},
		{"Routes", got.Routes, want.Routes},
		{"HostPorts", got.HostPorts, want.HostPorts},
		{"DNS", got.DNS, want.DNS},
	}
	for _, part := range parts {
		if !reflect.DeepEqual(part.got, part.want) {
			t.Errorf("State().%s =\n\t%s\nwant\n\t%s", part.name, show(part.got), show(part.want))
		}
	}
	return got
}

// show prints v as JSON: addresses as text, every field named.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// checkProblems compares a list of a Result with want: Kind, Service, UID and Item must be
// equal, and the reason must contain want's Reason.
func checkProblems(t *testing.T, list string, got, want []netplane.Problem) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.Kind == w.Kind && g.Service == w.Service && g.UID == w.UID && g.Item == w.Item && strings.Contains(g.Reason, w.Reason)
	}
	if !ok {
		t.Errorf("Result.%s =\n\t%s\nwant\n\t%s", list, problems(got), problems(want))
	}
}

func problems(ps []netplane.Problem) string {
	if len(ps) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString("\n\t")
		}
		fmt.Fprintf(&b, "%q", p.String())
	}
	return b.String()
}

// checkResult checks the three lists of res.
func checkResult(t *testing.T, res netplane.Result, skipped, refused []netplane.Problem) {
	t.Helper()
	checkProblems(t, "Skipped", res.Skipped, skipped)
	checkProblems(t, "Refused", res.Refused, refused)
	checkProblems(t, "Failed", res.Failed, nil)
}

// fullConfig has a bit of everything.
func fullConfig() netplane.Config {
	return netplane.Config{
		Services:      []netplane.Service{web(), api(), lbService("front", "10.96.0.12", 8081, 30081, netplane.TCP)},
		Routes:        []netplane.Route{route("10.244.2.0/24", "192.168.77.3"), route("10.244.1.0/24", "192.168.77.2")},
		HostPorts:     []netplane.HostPort{hostPort("a", netplane.TCP, "", 8080, 80), hostPort("b", netplane.UDP, NodeIP.String(), 5353, 53)},
		ReservedPorts: []uint16{2379, 2380, 7443},
	}
}

func fullState() netplane.State {
	return netplane.State{
		Frontends: append(append([]netplane.Frontend{}, webFrontends...),
			netplane.Frontend{VIP: addr("10.96.0.11"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
			netplane.Frontend{VIP: addr("10.96.0.12"), Port: 8081, Proto: netplane.TCP, Backends: aps(pod1 + ":8080")}),
		NodePorts: []netplane.NodePort{
			{Port: 8081, Proto: netplane.TCP, Backends: aps(pod1 + ":8080")},
			{Port: 30081, Proto: netplane.TCP, Backends: aps(pod1 + ":8080")},
			{Port: 30443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
		},
		Routes:    []netplane.Route{route("10.244.1.0/24", "192.168.77.2"), route("10.244.2.0/24", "192.168.77.3")},
		HostPorts: []netplane.HostPort{hostPort("a", netplane.TCP, "", 8080, 80), hostPort("b", netplane.UDP, NodeIP.String(), 5353, 53)},
		DNS:       []dns.Service{apiDNS, webDNS, lbDNS("front", "10.96.0.12", 8081, netplane.TCP)},
	}
}

// A new plane holds nothing; after Set it holds the Config, normalized: sorted, backends
// sorted, LoadBalancer ports on the node's address next to the node ports.
func testSetThenState(t *testing.T, p netplane.Plane) {
	checkState(t, p, netplane.State{})
	res := set(t, p, fullConfig())
	checkResult(t, res, nil, nil)
	checkState(t, p, fullState())
}

// The same Config again changes nothing and reports the same.
func testSetTwice(t *testing.T, p netplane.Plane) {
	c := fullConfig()
	c.Services = append(c.Services, lbService("admin", "10.96.0.13", 7443, 30743, netplane.TCP))
	first := set(t, p, c)
	before := checkState(t, p, netplane.State{Frontends: append(fullState().Frontends,
		netplane.Frontend{VIP: addr("10.96.0.13"), Port: 7443, Proto: netplane.TCP, Backends: aps(pod1 + ":8080")}),
		NodePorts: []netplane.NodePort{fullState().NodePorts[0], fullState().NodePorts[1], fullState().NodePorts[2],
			{Port: 30743, Proto: netplane.TCP, Backends: aps(pod1 + ":8080")}},
		Routes: fullState().Routes, HostPorts: fullState().HostPorts,
		DNS: []dns.Service{apiDNS, webDNS, lbDNS("admin", "10.96.0.13", 7443, netplane.TCP), lbDNS("front", "10.96.0.12", 8081, netplane.TCP)}})
	second := set(t, p, c)
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second Set reported %+v, the first %+v", second, first)
	}
	checkResult(t, second, []netplane.Problem{{Kind: netplane.KindLoadBalancer, Service: "shop/admin", Item: "7443/TCP", Reason: "the daemon listens on it"}}, nil)
	checkState(t, p, before)
}

// Backends come, go and change port.
func testBackends(t *testing.T, p netplane.Plane) {
	s := web()
	s.Ports = s.Ports[:1]
	c := netplane.Config{Services: []netplane.Service{s}}
	frontend := func(backends ...string) []netplane.Frontend {
		return []netplane.Frontend{{VIP: addr("10.96.0.10"), Port: 80, Proto: netplane.TCP, Backends: aps(backends...)}}
	}
	steps := []struct {
		name      string
		endpoints []netplane.Endpoint
		want      []netplane.Frontend
	}{
		{"two", s.Endpoints, frontend(pod1+":8080", pod2+":8080")},
		{"added", append(s.Endpoints, netplane.Endpoint{IP: addr(pod3), Ports: map[string]uint16{"http": 8080}}),
			frontend(pod1+":8080", pod2+":8080", pod3+":8080")},
		{"removed", []netplane.Endpoint{{IP: addr(pod3), Ports: map[string]uint16{"http": 8080}}, s.Endpoints[0]},
			frontend(pod2+":8080", pod3+":8080")},
		{"port changed", []netplane.Endpoint{{IP: addr(pod3), Ports: map[string]uint16{"http": 9090}}, s.Endpoints[0]},
			frontend(pod2+":8080", pod3+":9090")},
		{"the same pod twice", []netplane.Endpoint{s.Endpoints[0], s.Endpoints[0]}, frontend(pod2 + ":8080")},
		{"none", nil, frontend()},
	}
	for _, st := range steps {
		c.Services[0].Endpoints = st.endpoints
		checkResult(t, set(t, p, c), nil, nil)
		got := checkState(t, p, netplane.State{Frontends: st.want, DNS: []dns.Service{dnsWith(webDNS, st.want[0].Backends, s.Ports)}})
		if t.Failed() {
			t.Fatalf("after %q: %+v", st.name, got)
		}
	}
}

// A headless Service's endpoints keep their hostnames on the way to the DNS server, sorted by
// name; it has no frontends.
func testHostnames(t *testing.T, p netplane.Plane) {
	db := netplane.Service{Namespace: "default", Name: "db", Type: netplane.TypeClusterIP, Headless: true,
		Ports: []netplane.ServicePort{{Name: "pg", Proto: netplane.TCP, Port: 5432}},
		Endpoints: []netplane.Endpoint{
			{IP: addr(pod3), Ports: map[string]uint16{"pg": 5432}, Hostname: "db-1"},
			{IP: addr(pod2), Ports: map[string]uint16{"pg": 5432}},
			{IP: addr(pod1), Ports: map[string]uint16{"pg": 5432}, Hostname: "db-0"},
		}}
	checkResult(t, set(t, p, netplane.Config{Services: []netplane.Service{db}}), nil, nil)
	checkState(t, p, netplane.State{DNS: []dns.Service{{Namespace: "default", Name: "db", Headless: true,
		Ports: []dns.Port{{Name: "pg", Protocol: "TCP", Port: 5432}}, Endpoints: addrs(pod1, pod2, pod3),
		Hostnames: []dns.Hostname{{Name: "db-0", Addr: addr(pod1)}, {Name: "db-1", Addr: addr(pod3)}}}}})
}

// externalTrafficPolicy Local: the node port and the LoadBalancer port balance over the
// endpoints on this node only, the virtual IP over all of them; with no local endpoint the
// node ports have no backend (new flows are dropped).
func testLocalTraffic(t *testing.T, p netplane.Plane) {
	s := api()
	s.Type, s.LocalTraffic = netplane.TypeLoadBalancer, true
	s.Endpoints = []netplane.Endpoint{{IP: addr(pod3), Ports: map[string]uint16{"https": 8443}},
		{IP: addr(pod1), Ports: map[string]uint16{"https": 8443}, Local: true}}
	checkResult(t, set(t, p, netplane.Config{Services: []netplane.Service{s}}), nil, nil)
	st, err := p.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Frontends) != 1 || !slices.Equal(st.Frontends[0].Backends, aps(pod1+":8443", pod3+":8443")) {
		t.Errorf("frontends %+v, want the virtual IP over both endpoints", st.Frontends)
	}
	if len(st.NodePorts) != 2 || !slices.Equal(st.NodePorts[0].Backends, aps(pod1+":8443")) || !slices.Equal(st.NodePorts[1].Backends, aps(pod1+":8443")) {
		t.Errorf("node ports %+v, want 443 and 30443 over the local endpoint only", st.NodePorts)
	}
	s.Endpoints[1].Local = false
	checkResult(t, set(t, p, netplane.Config{Services: []netplane.Service{s}}), nil, nil)
	if st, err = p.State(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, np := range st.NodePorts {
		if len(np.Backends) != 0 {
			t.Errorf("node port %+v without a local endpoint has backends", np)
		}
	}
}

// dnsWith is rec with the endpoints of backends and the given ports.
func dnsWith(rec dns.Service, backends []netip.AddrPort, ports []netplane.ServicePort) dns.Service {
	rec.Endpoints = nil
	for _, b := range backends {
		rec.Endpoints = append(rec.Endpoints, b.Addr())
	}
	rec.Ports = nil
	for _, p := range ports {
		rec.Ports = append(rec.Ports, dns.Port{Name: p.Name, Protocol: p.Proto.String(), Port: p.Port})
	}
	return rec
}

// A Service that goes takes its virtual IP ports, node ports and name along.
func testServiceRemoved(t *testing.T, p netplane.Plane) {
	set(t, p, netplane.Config{Services: []netplane.Service{web(), api()}})
	checkState(t, p, netplane.State{
		Frontends: append(append([]netplane.Frontend{}, webFrontends...),
			netplane.Frontend{VIP: addr("10.96.0.11"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")}),
		NodePorts: []netplane.NodePort{{Port: 30443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")}},
		DNS:       []dns.Service{apiDNS, webDNS},
	})
	checkResult(t, set(t, p, netplane.Config{Services: []netplane.Service{web()}}), nil, nil)
	checkState(t, p, netplane.State{Frontends: webFrontends, DNS: []dns.Service{webDNS}})
}

// ClientIP affinity with its timeout: whole seconds, 3 hours by default, at most a day.
func testAffinity(t *testing.T, p netplane.Plane) {
	s := web()
	s.Ports = s.Ports[:1]
	s.Affinity = netplane.ClientIP
	steps := []struct {
		name     string
		affinity netplane.Affinity
		timeout  time.Duration
		want     netplane.Affinity
		wantTime time.Duration
	}{
		{"30 minutes", netplane.ClientIP, 30 * time.Minute, netplane.ClientIP, 30 * time.Minute},
		{"default", netplane.ClientIP, 0, netplane.ClientIP, 3 * time.Hour},
		{"rounded up", netplane.ClientIP, 1500 * time.Millisecond, netplane.ClientIP, 2 * time.Second},
		{"off", netplane.None, 10 * time.Second, netplane.None, 0},
		{"on again", netplane.ClientIP, 10 * time.Second, netplane.ClientIP, 10 * time.Second},
	}
	for _, st := range steps {
		s.Affinity, s.AffinityTimeout = st.affinity, st.timeout
		checkResult(t, set(t, p, netplane.Config{Services: []netplane.Service{s}}), nil, nil)
		checkState(t, p, netplane.State{Frontends: []netplane.Frontend{{VIP: addr("10.96.0.10"), Port: 80, Proto: netplane.TCP,
			Backends: webFrontends[1].Backends, Affinity: st.want, AffinityTimeout: st.wantTime}}, DNS: []dns.Service{dnsWith(webDNS, webFrontends[1].Backends, s.Ports)}})
		if t.Failed() {
			t.Fatalf("after %q", st.name)
		}
	}
	// Longer than Kubernetes allows: refused, and the port goes.
	s.AffinityTimeout = 48 * time.Hour
	res := set(t, p, netplane.Config{Services: []netplane.Service{s}})
	checkResult(t, res, nil, []netplane.Problem{{Kind: netplane.KindService, Service: "default/web", Item: "10.96.0.10", Reason: "timeout"}})
	checkState(t, p, netplane.State{DNS: []dns.Service{dnsWith(webDNS, webFrontends[1].Backends, s.Ports)}})
}

// Node ports carry the Service's backends; of two Services with the same node port, the first
// by namespace and name has it.
func testNodePorts(t *testing.T, p netplane.Plane) {
	other := api()
	other.Namespace, other.Name, other.ClusterIP = "zoo", "api", addr("10.96.0.14")
	other.Ports = append(other.Ports, netplane.ServicePort{Name: "https", Proto: netplane.UDP, Port: 443, NodePort: 30443})
	res := set(t, p, netplane.Config{Services: []netplane.Service{other, api()}})
	checkResult(t, res, nil, []netplane.Problem{{Kind: netplane.KindNodePort, Service: "zoo/api", Item: "30443/TCP", Reason: "default/api"}})
	checkState(t, p, netplane.State{
		Frontends: []netplane.Frontend{
			{VIP: addr("10.96.0.11"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
			{VIP: addr("10.96.0.14"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
			{VIP: addr("10.96.0.14"), Port: 443, Proto: netplane.UDP, Backends: aps(pod3 + ":8443")},
		},
		NodePorts: []netplane.NodePort{
			{Port: 30443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
			{Port: 30443, Proto: netplane.UDP, Backends: aps(pod3 + ":8443")},
		},
		DNS: []dns.Service{apiDNS, {Namespace: "zoo", Name: "api", ClusterIP: addr("10.96.0.14"),
			Ports: []dns.Port{{Name: "https", Protocol: "TCP", Port: 443}, {Name: "https", Protocol: "UDP", Port: 443}}, Endpoints: addrs(pod3)}},
	})
	// The node port changes.
	s := api()
	s.Ports[0].NodePort = 30444
	checkResult(t, set(t, p, netplane.Config{Services: []netplane.Service{s}}), nil, nil)
	checkState(t, p, netplane.State{
		Frontends: []netplane.Frontend{{VIP: addr("10.96.0.11"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")}},
		NodePorts: []netplane.NodePort{{Port: 30444, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")}},
		DNS:       []dns.Service{apiDNS},
	})
}

// LoadBalancer ports open on the node's address with the Service's backends, except a TCP port
// the daemon listens on, a port that is a node port, a port another LoadBalancer Service has,
// and the ports of a pending Service.
func testLoadBalancerPorts(t *testing.T, p netplane.Plane) {
	pending := lbService("pending", "10.96.0.16", 9000, 30900, netplane.TCP)
	pending.Pending = true
	clash := lbService("clash", "10.96.0.17", 30443, 30901, netplane.TCP)
	second := lbService("second", "10.96.0.18", 8081, 30902, netplane.TCP)
	c := netplane.Config{
		Services: []netplane.Service{
			lbService("front", "10.96.0.12", 8081, 30081, netplane.TCP),
			lbService("admin", "10.96.0.13", 7443, 30743, netplane.TCP),
			lbService("dns", "10.96.0.15", 7443, 30753, netplane.UDP),
			pending, clash, second, api(),
		},
		ReservedPorts: []uint16{2379, 2380, 7443},
	}
	res := set(t, p, c)
	checkResult(t, res, []netplane.Problem{
		{Kind: netplane.KindLoadBalancer, Service: "shop/pending", Item: "9000/TCP", Reason: "pending"},
		{Kind: netplane.KindLoadBalancer, Service: "shop/admin", Item: "7443/TCP", Reason: "the daemon listens on it"},
		{Kind: netplane.KindLoadBalancer, Service: "shop/clash", Item: "30443/TCP", Reason: "node port of Service default/api"},
		{Kind: netplane.KindLoadBalancer, Service: "shop/second", Item: "8081/TCP", Reason: "shop/front holds it"},
	}, nil)
	be := aps(pod1 + ":8080")
	st := checkState(t, p, netplane.State{
		Frontends: []netplane.Frontend{
			{VIP: addr("10.96.0.11"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
			{VIP: addr("10.96.0.12"), Port: 8081, Proto: netplane.TCP, Backends: be},
			{VIP: addr("10.96.0.13"), Port: 7443, Proto: netplane.TCP, Backends: be},
			{VIP: addr("10.96.0.15"), Port: 7443, Proto: netplane.UDP, Backends: be},
			{VIP: addr("10.96.0.16"), Port: 9000, Proto: netplane.TCP, Backends: be},
			{VIP: addr("10.96.0.17"), Port: 30443, Proto: netplane.TCP, Backends: be},
			{VIP: addr("10.96.0.18"), Port: 8081, Proto: netplane.TCP, Backends: be},
		},
		NodePorts: []netplane.NodePort{
			{Port: 7443, Proto: netplane.UDP, Backends: be}, // the daemon's ports are TCP
			{Port: 8081, Proto: netplane.TCP, Backends: be},
			{Port: 30081, Proto: netplane.TCP, Backends: be},
			{Port: 30443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
			{Port: 30743, Proto: netplane.TCP, Backends: be},
			{Port: 30753, Proto: netplane.UDP, Backends: be},
			{Port: 30900, Proto: netplane.TCP, Backends: be}, // a pending Service keeps its node ports
			{Port: 30901, Proto: netplane.TCP, Backends: be},
			{Port: 30902, Proto: netplane.TCP, Backends: be},
		},
		DNS: []dns.Service{apiDNS, lbDNS("admin", "10.96.0.13", 7443, netplane.TCP), lbDNS("clash", "10.96.0.17", 30443, netplane.TCP),
			lbDNS("dns", "10.96.0.15", 7443, netplane.UDP), lbDNS("front", "10.96.0.12", 8081, netplane.TCP),
			lbDNS("pending", "10.96.0.16", 9000, netplane.TCP), lbDNS("second", "10.96.0.18", 8081, netplane.TCP)},
	})
	if t.Failed() {
		t.Fatalf("state %+v", st)
	}
	// The pending Service gets its port, front loses its own: 8081 goes to second.
	c.Services[3].Pending = false
	c.Services[0].Pending = true
	res = set(t, p, c)
	checkResult(t, res, []netplane.Problem{
		{Kind: netplane.KindLoadBalancer, Service: "shop/front", Item: "8081/TCP", Reason: "pending"},
		{Kind: netplane.KindLoadBalancer, Service: "shop/admin", Item: "7443/TCP", Reason: "the daemon listens on it"},
		{Kind: netplane.KindLoadBalancer, Service: "shop/clash", Item: "30443/TCP", Reason: "node port of Service default/api"},
	}, nil)
	got, err := p.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, np := range got.NodePorts {
		ports = append(ports, np.String())
	}
	if want := ":7443/UDP :8081/TCP :9000/TCP :30081/TCP :30443/TCP :30743/TCP :30753/UDP :30900/TCP :30901/TCP :30902/TCP"; strings.Join(ports, " ") != want {
		t.Errorf("node's address: %s, want %s", strings.Join(ports, " "), want)
	}
}

// Routes are added, changed and removed; invalid ones are refused and the others applied.
func testRoutes(t *testing.T, p netplane.Plane) {
	set(t, p, netplane.Config{Routes: []netplane.Route{route("10.244.2.0/24", "192.168.77.3"), route("10.244.1.0/24", "192.168.77.2")}})
	checkState(t, p, netplane.State{Routes: []netplane.Route{route("10.244.1.0/24", "192.168.77.2"), route("10.244.2.0/24", "192.168.77.3")}})
	// One moves to another address, one goes, one comes; the CIDR is masked.
	res := set(t, p, netplane.Config{Routes: []netplane.Route{route("10.244.1.0/24", "192.168.77.4"), route("10.244.3.7/24", "192.168.77.5"),
		route("10.244.1.0/24", "192.168.77.4")}})
	checkResult(t, res, nil, nil)
	checkState(t, p, netplane.State{Routes: []netplane.Route{route("10.244.1.0/24", "192.168.77.4"), route("10.244.3.0/24", "192.168.77.5")}})
	res = set(t, p, netplane.Config{Routes: []netplane.Route{
		route("10.244.1.0/24", "192.168.77.4"),
		route("10.244.0.0/25", "192.168.77.6"), // this node's own pods
		route("10.96.1.0/24", "192.168.77.6"),  // Services
		route("10.244.5.0/24", "10.244.0.9"),   // via a pod of this node
		route("10.244.1.0/24", "192.168.77.7"), // routed twice
		{CIDR: netip.MustParsePrefix("fd00::/64"), Via: addr("192.168.77.6")},
		{CIDR: netip.MustParsePrefix("10.244.6.0/24"), Via: addr("fd00::1")},
	}})
	checkResult(t, res, nil, []netplane.Problem{
		{Kind: netplane.KindRoute, Item: "10.244.0.0/25 via 192.168.77.6", Reason: "own pod CIDR"},
		{Kind: netplane.KindRoute, Item: "10.96.1.0/24 via 192.168.77.6", Reason: "service CIDR"},
		{Kind: netplane.KindRoute, Item: "10.244.5.0/24 via 10.244.0.9", Reason: "inside this node's pod CIDR"},
		{Kind: netplane.KindRoute, Item: "10.244.1.0/24 via 192.168.77.7", Reason: "routed via 192.168.77.4 already"},
		{Kind: netplane.KindRoute, Item: "fd00::/64 via 192.168.77.6", Reason: "IPv4 prefix"},
		{Kind: netplane.KindRoute, Item: "10.244.6.0/24 via fd00::1", Reason: "IPv4 address"},
	})
	checkState(t, p, netplane.State{Routes: []netplane.Route{route("10.244.1.0/24", "192.168.77.4")}})
	set(t, p, netplane.Config{})
	checkState(t, p, netplane.State{})
}

// Host ports are declared as a whole set; of two that catch the same packets the one the plane
// holds keeps it, else the first given; invalid ones are refused.
func testHostPorts(t *testing.T, p netplane.Plane) {
	a := hostPort("a", netplane.TCP, "", 8080, 80)
	b := hostPort("b", netplane.UDP, "", 5353, 53)
	res := set(t, p, netplane.Config{HostPorts: []netplane.HostPort{b, a}})
	checkResult(t, res, nil, nil)
	checkState(t, p, netplane.State{HostPorts: []netplane.HostPort{a, b}})
	// Replaced: a goes, c takes its port on one address.
	c := hostPort("c", netplane.TCP, NodeIP.String(), 8080, 8000)
	checkResult(t, set(t, p, netplane.Config{HostPorts: []netplane.HostPort{c, b}}), nil, nil)
	checkState(t, p, netplane.State{HostPorts: []netplane.HostPort{c, b}})
	// d wants c's port on every address and comes first: c keeps it. e is invalid.
	d := hostPort("d", netplane.TCP, "", 8080, 80)
	e := hostPort("e", netplane.TCP, "", 8081, 0)
	res = set(t, p, netplane.Config{HostPorts: []netplane.HostPort{d, e, c, b}})
	checkResult(t, res, nil, []netplane.Problem{
		{Kind: netplane.KindHostPort, UID: "d", Item: "0.0.0.0:8080/TCP -> default/d:80", Reason: "already used by pod default/c"},
		{Kind: netplane.KindHostPort, UID: "e", Item: "0.0.0.0:8081/TCP -> default/e:0", Reason: "containerPort 0"},
	})
	if got := res.HostPortsRefused(); len(got) != 2 || got["d"] == "" || got["e"] == "" {
		t.Errorf("HostPortsRefused = %v, want d's and e's reasons", got)
	}
	checkState(t, p, netplane.State{HostPorts: []netplane.HostPort{c, b}})
	// Once c is gone, d gets the port.
	checkResult(t, set(t, p, netplane.Config{HostPorts: []netplane.HostPort{d}}), nil, nil)
	checkState(t, p, netplane.State{HostPorts: []netplane.HostPort{d}})
}

// What cannot be applied is refused; the rest of the Config is applied.
func testRefused(t *testing.T, p netplane.Plane) {
	v6 := web()
	v6.Name, v6.ClusterIP = "v6", addr("fd00::10")
	twin := web()
	twin.Name = "web2" // the same virtual IP and ports as web, and after it
	badName := api()
	badName.Name = "Bad_Name"
	badEndpoint := api()
	badEndpoint.Namespace = "other"
	badEndpoint.ClusterIP = addr("10.96.0.20")
	badEndpoint.Ports[0].NodePort = 0
	badEndpoint.Endpoints = append(badEndpoint.Endpoints, netplane.Endpoint{IP: addr("fd00::5"), Ports: map[string]uint16{"https": 8443}})
	badProto := api()
	badProto.Namespace, badProto.Name, badProto.ClusterIP = "other", "sctp", addr("10.96.0.21")
	badProto.Ports = []netplane.ServicePort{{Name: "x", Proto: 132, Port: 9}, {Name: "y", Proto: netplane.TCP, Port: 0}}
	res := set(t, p, netplane.Config{Services: []netplane.Service{v6, twin, web(), badName, badEndpoint, badProto}})
	checkProblems(t, "Skipped", res.Skipped, nil)
	checkProblems(t, "Failed", res.Failed, nil)
	want := []netplane.Problem{
		{Kind: netplane.KindService, Service: "default/v6", Item: "fd00::10", Reason: "IPv4"},
		{Kind: netplane.KindService, Service: "default/web2", Item: "10.96.0.10:80/TCP", Reason: "Service default/web has the same virtual IP and port"},
		{Kind: netplane.KindService, Service: "default/web2", Item: "10.96.0.10:53/UDP", Reason: "Service default/web has the same virtual IP and port"},
		{Kind: netplane.KindService, Service: "other/api", Item: "endpoint fd00::5", Reason: "IPv4 address"},
		{Kind: netplane.KindService, Service: "other/sctp", Item: "10.96.0.21:9/Proto(132)", Reason: "TCP or UDP"},
		{Kind: netplane.KindService, Service: "other/sctp", Item: "10.96.0.21:0/TCP", Reason: "port must not be 0"},
		{Kind: netplane.KindDNS, Service: "default/Bad_Name", Reason: "DNS labels"},
	}
	checkProblems(t, "Refused", res.Refused, want)
	checkState(t, p, netplane.State{
		Frontends: append(append([]netplane.Frontend{}, webFrontends...),
			netplane.Frontend{VIP: addr("10.96.0.11"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")},
			netplane.Frontend{VIP: addr("10.96.0.20"), Port: 443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")}),
		NodePorts: []netplane.NodePort{{Port: 30443, Proto: netplane.TCP, Backends: aps(pod3 + ":8443")}},
		DNS: []dns.Service{
			{Namespace: "default", Name: "v6", ClusterIP: addr("fd00::10"), Ports: webDNS.Ports, Endpoints: webDNS.Endpoints},
			webDNS,
			{Namespace: "default", Name: "web2", ClusterIP: addr("10.96.0.10"), Ports: webDNS.Ports, Endpoints: webDNS.Endpoints},
			{Namespace: "other", Name: "api", ClusterIP: addr("10.96.0.20"), Ports: apiDNS.Ports, Endpoints: addrs(pod3, "fd00::5")},
			{Namespace: "other", Name: "sctp", ClusterIP: addr("10.96.0.21"), Ports: []dns.Port{{Name: "x", Protocol: "Proto(132)", Port: 9}, {Name: "y", Protocol: "TCP", Port: 0}},
				Endpoints: addrs(pod3)},
		},
	})
}

// An empty Config takes away everything an earlier one programmed.
func testEmptyConfig(t *testing.T, p netplane.Plane) {
	set(t, p, fullConfig())
	checkState(t, p, fullState())
	checkResult(t, set(t, p, netplane.Config{}), nil, nil)
	checkState(t, p, netplane.State{})
}

// Without a node interface nothing opens on the node's address, and the Result says so once.
func testWithoutNodeInterface(t *testing.T, p netplane.Plane) {
	c := fullConfig()
	c.Services = append(c.Services, lbService("admin", "10.96.0.13", 7443, 30743, netplane.TCP))
	for range 2 {
		res := set(t, p, c)
		checkResult(t, res, []netplane.Problem{{Kind: netplane.KindNodePort, Reason: "4 node ports and LoadBalancer ports are not opened: the node has no node interface"}}, nil)
	}
	want := fullState()
	want.NodePorts = nil
	want.Frontends = append(want.Frontends, netplane.Frontend{VIP: addr("10.96.0.13"), Port: 7443, Proto: netplane.TCP, Backends: aps(pod1 + ":8080")})
	want.DNS = []dns.Service{apiDNS, webDNS, lbDNS("admin", "10.96.0.13", 7443, netplane.TCP), lbDNS("front", "10.96.0.12", 8081, netplane.TCP)}
	checkState(t, p, want)
}
