package cluster

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

// A LoadBalancer Service's ingress is the first address of every node that serves node ports,
// sorted, without the nodes whose daemon listens on one of its TCP ports.
func TestLoadBalancerIngress(t *testing.T) {
	nodes := []NodeRecord{
		{Name: "n3", Addresses: []string{"10.0.0.3"}, NodePorts: true, ReservedPorts: []int32{2379, 2380, 7443}},
		{Name: "n1", Addresses: []string{"10.0.0.1", "192.168.0.1"}, NodePorts: true, ReservedPorts: []int32{7443}},
		{Name: "n2", Addresses: []string{"10.0.0.2"}},                                                // no --node-interface
		{Name: "n4", Addresses: []string{"10.0.0.4"}, NodePorts: true, ReservedPorts: []int32{8081}}, // --api-listen :8081
		{Name: "n5", NodePorts: true},
	}
	lb := reconcile.ServiceState{Name: "front", Type: manifests.ServiceTypeLoadBalancer,
		Ports: []reconcile.ServicePortState{{Name: "http", Protocol: manifests.ProtocolTCP, Port: 8081}, {Name: "dns", Protocol: manifests.ProtocolUDP, Port: 2379}}}
	if got, want := loadBalancerIngress(lb, nodes), []string{"10.0.0.1", "10.0.0.3"}; !slices.Equal(got, want) {
		t.Errorf("ingress %v, want %v", got, want)
	}
	lb.Ports[0].Port = 7443
	if got := loadBalancerIngress(lb, nodes); !slices.Equal(got, []string{"10.0.0.4"}) {
		t.Errorf("ingress on the daemon's port 7443: %v, want only n4", got)
	}
	pending := lb
	pending.Pending = true
	if got := loadBalancerIngress(pending, nodes); got == nil || len(got) != 0 {
		t.Errorf("pending Service: ingress %#v, want empty", got)
	}
	if rec := serviceRecord(pending); !rec.Pending {
		t.Errorf("the record of a pending Service does not say so: %+v", rec)
	}
	np := reconcile.ServiceState{Name: "np", Type: manifests.ServiceTypeNodePort, Ports: lb.Ports}
	if got := loadBalancerIngress(np, nodes); got != nil {
		t.Errorf("NodePort Service has ingress %v", got)
	}
	if got := loadBalancerIngress(lb, nil); got == nil || len(got) != 0 {
		t.Errorf("no node: ingress %#v, want empty", got)
	}
}

// The snapshot shows a LoadBalancer's ingress in status.loadBalancer.ingress, as the API server does.
func TestSnapshotServiceIngress(t *testing.T) {
	svc := &manifests.Service{ObjectMeta: manifests.ObjectMeta{Name: "front", Namespace: "default"},
		Spec: manifests.ServiceSpec{Type: manifests.ServiceTypeLoadBalancer, Ports: []manifests.ServicePort{{Name: "http", Port: 8081}}}}
	svc.Kind = "Service"
	s := &Snapshot{Objects: []manifests.Object{svc}, Services: map[string]ServiceRecord{
		"default/front": {Namespace: "default", Name: "front", ClusterIP: "10.96.0.9", Type: "LoadBalancer",
			Ports: []ServicePort{{Name: "http", Protocol: "TCP", Port: 8081, NodePort: 30000}}, Ingress: []string{"10.0.0.1", "10.0.0.3"}},
	}}
	l, err := s.ObjectList("Service", Filter{All: true, Selector: manifests.Everything()})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("ObjectList = %v, %v", l, err)
	}
	got := l.Items[0].(*manifests.Service)
	want := []manifests.LoadBalancerIngress{{IP: "10.0.0.1"}, {IP: "10.0.0.3"}}
	if !slices.Equal(got.Status.LoadBalancer.Ingress, want) || got.Spec.ClusterIP != "10.96.0.9" || got.Spec.Ports[0].NodePort != 30000 {
		t.Errorf("service %+v, want ingress %v, the virtual IP and the node port", got, want)
	}
	if _, err := netip.ParseAddr(got.Status.LoadBalancer.Ingress[0].IP); err != nil {
		t.Error(err)
	}
	if svc.Status.LoadBalancer.Ingress != nil {
		t.Errorf("the desired object was changed")
	}
}
