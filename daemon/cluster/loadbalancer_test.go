package cluster

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

// A node opens LoadBalancer ports on its first address when it serves node ports, and not on
// the ports its daemon listens on.
func TestObservedNodeLoadBalancerAddr(t *testing.T) {
	for _, tc := range []struct {
		rec  NodeRecord
		want string
	}{
		{NodeRecord{Addresses: []string{"10.0.0.1", "192.168.0.1"}, NodePorts: true, ReservedPorts: []int32{7443}}, "10.0.0.1"},
		{NodeRecord{Addresses: []string{"10.0.0.2"}}, "invalid IP"}, // no --node-interface
		{NodeRecord{NodePorts: true}, "invalid IP"},
		{NodeRecord{Addresses: []string{"node-1.example"}, NodePorts: true}, "invalid IP"},
	} {
		n := reconcileNode(tc.rec, false, false)
		if n.LoadBalancerAddr.String() != tc.want || !slices.Equal(n.ReservedPorts, tc.rec.ReservedPorts) {
			t.Errorf("%+v: LoadBalancerAddr %v, reserved %v; want %s", tc.rec, n.LoadBalancerAddr, n.ReservedPorts, tc.want)
		}
	}
}

// The snapshot shows a LoadBalancer's ingress in status.loadBalancer.ingress, as the API server does.
func TestSnapshotServiceIngress(t *testing.T) {
	svc := &manifests.Service{ObjectMeta: manifests.ObjectMeta{Name: "front", Namespace: "default"},
		Spec: manifests.ServiceSpec{Type: manifests.ServiceTypeLoadBalancer, Ports: []manifests.ServicePort{{Name: "http", Port: 8081}}}}
	svc.Kind = "Service"
	s := &Snapshot{Objects: []manifests.Object{svc}, Services: map[string]reconcile.ServiceState{
		"default/front": {Namespace: "default", Name: "front", ClusterIP: netip.MustParseAddr("10.96.0.9"), Type: manifests.ServiceTypeLoadBalancer,
			Ports:   []reconcile.ServicePortState{{Name: "http", Protocol: manifests.ProtocolTCP, Port: 8081, NodePort: 30000}},
			Ingress: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.3")}},
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
