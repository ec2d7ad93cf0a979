package reconcile

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
)

func service(name, clusterIP string, selector map[string]string, target manifests.IntOrString) *manifests.Service {
	s := &manifests.Service{ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default"},
		Spec: manifests.ServiceSpec{ClusterIP: clusterIP, Selector: selector,
			Ports: []manifests.ServicePort{{Name: "http", Port: 80, TargetPort: target, Protocol: manifests.ProtocolTCP}}}}
	manifests.SetDefaults(s)
	return s
}

func podWith(name string, labels map[string]string) *manifests.Pod {
	return &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: manifests.PodSpec{Containers: []manifests.Container{{Name: "c", Ports: []manifests.ContainerPort{{Name: "web", ContainerPort: 8080, Protocol: manifests.ProtocolTCP}}}}}}
}

func TestServicesAllocateAndSelect(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	objs := []manifests.Object{
		service("b", "", map[string]string{"app": "web"}, manifests.FromString("web")),
		service("a", "", map[string]string{"app": "db"}, manifests.FromInt(5432)),
		service("fixed", "10.96.0.1", nil, manifests.FromInt(80)),
		service("headless", "None", map[string]string{"app": "web"}, manifests.FromInt(8080)),
	}
	pods := []PodAddr{
		{Pod: podWith("web-1", map[string]string{"app": "web"}), IP: netip.MustParseAddr("10.244.0.3"), Node: "n1", Ready: true},
		{Pod: podWith("web-2", map[string]string{"app": "web"}), IP: netip.MustParseAddr("10.244.0.2"), Node: "n1", Ready: true},
		{Pod: podWith("web-3", map[string]string{"app": "web"}), IP: netip.MustParseAddr("10.244.0.4"), Node: "n1", Ready: false},
		{Pod: podWith("web-4", map[string]string{"app": "web"}), IP: netip.MustParseAddr("10.244.0.5"), Node: "n1", Ready: true, Terminating: true},
	}
	plan := Services(objs, pods, nil, nil, nil, nil, cidr)
	if len(plan.Errors) != 0 {
		t.Fatalf("errors %v", plan.Errors)
	}
	got := map[string]ServiceState{}
	for _, s := range plan.Services {
		got[s.Name] = s
	}
	if got["fixed"].ClusterIP != netip.MustParseAddr("10.96.0.1") || got["a"].ClusterIP != netip.MustParseAddr("10.96.0.2") ||
		got["b"].ClusterIP != netip.MustParseAddr("10.96.0.3") || got["headless"].ClusterIP.IsValid() || !got["headless"].Headless {
		t.Errorf("allocation: %+v", got)
	}
	eps := got["b"].Endpoints
	if len(eps) != 2 || eps[0].IP != netip.MustParseAddr("10.244.0.2") || eps[0].Ports["http"] != 8080 {
		t.Errorf("endpoints of b: %+v; want the 2 ready, not terminating pods, sorted, with the named port resolved", eps)
	}
	// publishNotReadyAddresses: the pods before they are Ready, still not the terminating one.
	peers := service("peers", "None", map[string]string{"app": "web"}, manifests.FromInt(8080))
	peers.Spec.PublishNotReadyAddresses = true
	for _, st := range Services([]manifests.Object{peers}, pods, nil, nil, nil, nil, cidr).Services {
		if len(st.Endpoints) != 3 {
			t.Errorf("publishNotReadyAddresses: endpoints %+v, want web-1, web-2 and the unready web-3", st.Endpoints)
		}
	}
	// Addresses stay with their Service across plans, whatever else comes and goes.
	objs = append([]manifests.Object{service("aa", "", nil, manifests.FromInt(80))}, objs[1:]...)
	again := Services(objs, pods, nil, plan.Allocated, nil, nil, cidr)
	for _, s := range again.Services {
		if s.Name == "a" && s.ClusterIP != netip.MustParseAddr("10.96.0.2") {
			t.Errorf("service a moved to %s", s.ClusterIP)
		}
		if s.Name == "aa" && s.ClusterIP != netip.MustParseAddr("10.96.0.3") {
			t.Errorf("service aa got %s, want the address b freed", s.ClusterIP)
		}
	}
}

// An endpoint carries its pod's hostname when the pod's subdomain names the Service, in the
// Service's namespace, as Kubernetes' endpoints controller sets it; for any Service type.
func TestServicesEndpointHostname(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	sel := map[string]string{"app": "web"}
	pod := func(name, namespace, hostname, subdomain string) PodAddr {
		p := podWith(name, sel)
		p.Namespace, p.Spec.Hostname, p.Spec.Subdomain = namespace, hostname, subdomain
		return PodAddr{Pod: p, IP: netip.MustParseAddr("10.244.0.2"), Node: "n1", Ready: true}
	}
	other := service("web", "None", sel, manifests.FromInt(8080))
	other.Namespace = "other"
	for _, tc := range []struct {
		name string
		svc  *manifests.Service
		pod  PodAddr
		want string
	}{
		{"headless Service named by the subdomain", service("web", "None", sel, manifests.FromInt(8080)), pod("web-0", "default", "web-0", "web"), "web-0"},
		{"ClusterIP Service named by the subdomain", service("web", "", sel, manifests.FromInt(8080)), pod("web-0", "default", "h", "web"), "h"},
		{"subdomain names another Service", service("web", "None", sel, manifests.FromInt(8080)), pod("web-0", "default", "web-0", "db"), ""},
		{"no subdomain", service("web", "None", sel, manifests.FromInt(8080)), pod("web-0", "default", "web-0", ""), ""},
		{"subdomain without hostname", service("web", "None", sel, manifests.FromInt(8080)), pod("web-0", "default", "", "web"), ""},
		{"Service of the same name in the pod's namespace", other, pod("web-0", "other", "web-0", "web"), "web-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := Services([]manifests.Object{tc.svc}, []PodAddr{tc.pod}, nil, nil, nil, nil, cidr)
			if len(plan.Services) != 1 || len(plan.Services[0].Endpoints) != 1 {
				t.Fatalf("services %+v, want one with one endpoint", plan.Services)
			}
			if got := plan.Services[0].Endpoints[0].Hostname; got != tc.want {
				t.Errorf("hostname %q, want %q", got, tc.want)
			}
		})
	}
}

func TestServicesErrors(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/30") // .1 and .2 usable
	objs := []manifests.Object{
		service("a", "", nil, manifests.FromInt(80)),
		service("b", "", nil, manifests.FromInt(80)),
		service("c", "", nil, manifests.FromInt(80)),
		service("d", "192.168.1.1", nil, manifests.FromInt(80)),
	}
	plan := Services(objs, nil, nil, nil, nil, nil, cidr)
	msg := strings.Join(plan.Errors, "\n")
	if !strings.Contains(msg, "Service default/c: the service CIDR 10.96.0.0/30 is full") || !strings.Contains(msg, "not in the service CIDR") {
		t.Errorf("errors %q", msg)
	}
}

func TestNodePorts(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	np := func(name string, port int32) *manifests.Service {
		s := service(name, "", nil, manifests.FromInt(80))
		s.Spec.Type = manifests.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = port
		return s
	}
	objs := []manifests.Object{np("a", 0), np("b", 30000), np("c", 0)}
	plan := Services(objs, nil, nil, nil, nil, nil, cidr)
	got := map[string]int32{}
	for _, s := range plan.Services {
		got[s.Name] = s.Ports[0].NodePort
	}
	if got["b"] != 30000 || got["a"] != 30001 || got["c"] != 30002 {
		t.Errorf("node ports %v, want b's own 30000 and a, c the next free", got)
	}
	// Kept across plans even when another Service takes the lower port away from the allocation order.
	again := Services([]manifests.Object{np("a", 0), np("c", 0)}, nil, nil, nil, map[string]int32{"default/c/http": 30002}, nil, cidr)
	for _, s := range again.Services {
		if s.Name == "c" && s.Ports[0].NodePort != 30002 {
			t.Errorf("c moved to %d", s.Ports[0].NodePort)
		}
		if s.Name == "a" && s.Ports[0].NodePort != 30000 {
			t.Errorf("a got %d, want the lowest free 30000", s.Ports[0].NodePort)
		}
	}
}

// The ports a LoadBalancer Service opens on every node are never allocated as node ports, not
// even to a Service that had one of them; the LoadBalancer Service gets node ports of its own.
func TestNodePortsAvoidLoadBalancerPorts(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	lb := service("lb", "", nil, manifests.FromInt(80))
	lb.Spec.Type = manifests.ServiceTypeLoadBalancer
	lb.Spec.Ports = []manifests.ServicePort{
		{Name: "a", Port: 30000, Protocol: manifests.ProtocolTCP, TargetPort: manifests.FromInt(80)},
		{Name: "b", Port: 30002, Protocol: manifests.ProtocolUDP, TargetPort: manifests.FromInt(53)},
	}
	np := func(name string) *manifests.Service {
		s := service(name, "", nil, manifests.FromInt(80))
		s.Spec.Type = manifests.ServiceTypeNodePort
		return s
	}
	kept := map[string]int32{"default/c/http": 30002}
	plan := Services([]manifests.Object{lb, np("a"), np("c")}, nil, nil, nil, kept, nil, cidr)
	if len(plan.Errors) != 0 {
		t.Fatalf("errors %v", plan.Errors)
	}
	got := map[string][]int32{}
	for _, s := range plan.Services {
		for _, p := range s.Ports {
			got[s.Name] = append(got[s.Name], p.NodePort)
		}
		if s.Name == "lb" && (s.Type != manifests.ServiceTypeLoadBalancer || s.Ports[0].Port != 30000 || s.Ports[1].Port != 30002) {
			t.Errorf("lb = %+v, want its type and ports", s)
		}
	}
	want := map[string][]int32{"a": {30001}, "c": {30003}, "lb": {30004, 30005}}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("node ports %v, want %v: none of the LoadBalancer's ports 30000, 30002", got, want)
			break
		}
	}
}

// Two LoadBalancer Services on one port: the one that was served keeps the port, else the first
// by namespace and name; the other is pending, whatever other ports it has.
func TestLoadBalancersSharingAPortOneIsPending(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	lb := func(name string, ports ...int32) *manifests.Service {
		s := service(name, "", nil, manifests.FromInt(80))
		s.Spec.Type = manifests.ServiceTypeLoadBalancer
		s.Spec.Ports = nil
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, manifests.ServicePort{Name: fmt.Sprint("p", p), Port: p, Protocol: manifests.ProtocolTCP, TargetPort: manifests.FromInt(80)})
		}
		return s
	}
	udp := lb("dns", 80)
	udp.Spec.Ports[0].Protocol = manifests.ProtocolUDP
	objs := []manifests.Object{lb("store-front", 80), lb("store-admin", 80, 8443), lb("api", 8443), udp}
	pending := func(served map[string]bool) []string {
		var out []string
		for _, s := range Services(objs, nil, nil, nil, nil, served, cidr).Services {
			if s.Pending {
				out = append(out, s.Name)
			}
		}
		return out
	}
	// By name: api takes 8443/TCP, dns 80/UDP; store-admin wants 8443 too and waits, although
	// 80/TCP is free; store-front takes 80/TCP.
	if got := pending(nil); !slices.Equal(got, []string{"store-admin"}) {
		t.Errorf("pending %v, want [store-admin]", got)
	}
	// store-admin was served: it keeps 80/TCP and 8443/TCP, and both api and store-front wait.
	if got := pending(map[string]bool{"default/store-admin": true}); !slices.Equal(got, []string{"api", "store-front"}) {
		t.Errorf("pending %v, want [api store-front]", got)
	}
}

// Reconcile plans the Services with the pods when it is given a service CIDR.
func TestReconcilePlansServices(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	svc := service("web", "", map[string]string{"app": "web"}, manifests.FromInt(8080))
	pod := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: "web-1", Namespace: "default", Labels: map[string]string{"app": "web"}}}
	s := State{Objects: []manifests.Object{svc}, Pods: []Pod{{UID: "u1", Namespace: "default", Name: "web-1", Spec: pod, Node: "n1", Ready: true, IP: "10.244.0.5"}},
		ServiceCIDR: cidr, ServiceIPs: map[netip.Addr]string{netip.MustParseAddr("10.96.0.7"): "default/web"}}
	plan := Reconcile(s, &seqIDs{})
	if len(plan.Services.Services) != 1 {
		t.Fatalf("services %+v, want web", plan.Services)
	}
	got := plan.Services.Services[0]
	if got.ClusterIP != netip.MustParseAddr("10.96.0.7") || len(got.Endpoints) != 1 || got.Endpoints[0].IP != netip.MustParseAddr("10.244.0.5") {
		t.Errorf("web = %+v, want its kept address and the ready pod", got)
	}
	if Reconcile(State{Objects: s.Objects, Pods: s.Pods}, &seqIDs{}).Services.Services != nil {
		t.Error("services planned without a service CIDR")
	}
}

// A LoadBalancer Service's ingress is the address of every node that opens LoadBalancer ports,
// sorted, without the nodes whose daemon listens on one of its TCP ports.
func TestLoadBalancerIngress(t *testing.T) {
	addr := netip.MustParseAddr
	nodes := []Node{
		{Name: "n3", LoadBalancerAddr: addr("10.0.0.3"), ReservedPorts: []int32{2379, 2380, 7443}},
		{Name: "n1", LoadBalancerAddr: addr("10.0.0.1"), ReservedPorts: []int32{7443}},
		{Name: "n2"}, // no --node-interface
		{Name: "n4", LoadBalancerAddr: addr("10.0.0.4"), ReservedPorts: []int32{8081}}, // --api-listen :8081
	}
	lb := ServiceState{Name: "front", Type: manifests.ServiceTypeLoadBalancer,
		Ports: []ServicePortState{{Name: "http", Protocol: manifests.ProtocolTCP, Port: 8081}, {Name: "dns", Protocol: manifests.ProtocolUDP, Port: 2379}}}
	if got, want := loadBalancerIngress(lb, nodes), []netip.Addr{addr("10.0.0.1"), addr("10.0.0.3")}; !slices.Equal(got, want) {
		t.Errorf("ingress %v, want %v", got, want)
	}
	lb.Ports[0].Port = 7443
	if got := loadBalancerIngress(lb, nodes); !slices.Equal(got, []netip.Addr{addr("10.0.0.4")}) {
		t.Errorf("ingress on the daemon's port 7443: %v, want only n4", got)
	}
	pending := lb
	pending.Pending = true
	if got := loadBalancerIngress(pending, nodes); got == nil || len(got) != 0 {
		t.Errorf("pending Service: ingress %#v, want empty", got)
	}
	local := lb
	local.Ports = []ServicePortState{{Name: "http", Protocol: manifests.ProtocolTCP, Port: 8081}}
	local.LocalTraffic = true
	local.Endpoints = []Endpoint{{IP: addr("10.244.3.5"), Node: "n3"}}
	if got := loadBalancerIngress(local, nodes); !slices.Equal(got, []netip.Addr{addr("10.0.0.3")}) {
		t.Errorf("externalTrafficPolicy Local: ingress %v, want only n3, the node with a pod", got)
	}
	np := ServiceState{Name: "np", Type: manifests.ServiceTypeNodePort, Ports: lb.Ports}
	if got := loadBalancerIngress(np, nodes); got != nil {
		t.Errorf("NodePort Service has ingress %v", got)
	}
	if got := loadBalancerIngress(lb, nil); got == nil || len(got) != 0 {
		t.Errorf("no node: ingress %#v, want empty", got)
	}
	// Services plans it.
	svc := service("front", "", nil, manifests.FromInt(80))
	svc.Spec.Type = manifests.ServiceTypeLoadBalancer
	plan := Services([]manifests.Object{svc}, nil, nodes, nil, nil, nil, netip.MustParsePrefix("10.96.0.0/16"))
	if got := plan.Services[0].Ingress; len(got) != 3 {
		t.Errorf("planned ingress %v, want the three nodes that open LoadBalancer ports", got)
	}
}

// A Service's state is its store record: it survives a JSON round trip, addresses as text.
func TestServiceStateRoundTrip(t *testing.T) {
	s := ServiceState{Namespace: "default", Name: "web", ClusterIP: netip.MustParseAddr("10.96.0.5"), Type: manifests.ServiceTypeLoadBalancer,
		SessionAffinity: manifests.ServiceAffinityClientIP, AffinityTimeout: 60,
		Ports:     []ServicePortState{{Name: "http", Protocol: manifests.ProtocolTCP, Port: 80, NodePort: 30080, TargetPort: manifests.FromString("web")}},
		Endpoints: []Endpoint{{IP: netip.MustParseAddr("10.244.1.3"), Node: "n1", Pod: "default/web-1", Ports: map[string]int32{"http": 8080}, Hostname: "web-1"}},
		Ingress:   []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"clusterIP":"10.96.0.5"`, `"ip":"10.244.1.3"`, `"ingress":["192.0.2.1"]`, `"affinityTimeoutSeconds":60`, `"targetPort":"web"`, `"hostname":"web-1"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %s", data, want)
		}
	}
	var back ServiceState
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("round trip: %+v, %v; want %+v", back, err, s)
	}
	headless, err := json.Marshal(ServiceState{Name: "db", Headless: true})
	if err != nil || strings.Contains(string(headless), "clusterIP") {
		t.Errorf("headless Service: %s, %v; want no clusterIP", headless, err)
	}
}
