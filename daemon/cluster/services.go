package cluster

import (
	"net/netip"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// serviceInputs is what the Services were given before, for the planner to keep: their virtual
// IPs (by address), node ports (by "namespace/name/port name") and the LoadBalancer Services
// whose ports are open.
func (m *Master) serviceInputs() (map[netip.Addr]string, map[string]int32, map[string]bool) {
	ips, nodePorts, served := map[netip.Addr]string{}, map[string]int32{}, map[string]bool{}
	for _, kv := range m.view.services.List() {
		r := kv.Value
		if r.Type == manifests.ServiceTypeLoadBalancer && !r.Pending {
			served[r.Namespace+"/"+r.Name] = true
		}
		if r.ClusterIP.IsValid() {
			ips[r.ClusterIP] = r.Namespace + "/" + r.Name
		}
		for _, p := range r.Ports {
			if p.NodePort != 0 {
				nodePorts[r.Namespace+"/"+r.Name+"/"+p.Name] = p.NodePort
			}
		}
	}
	return ips, nodePorts, served
}

// serviceOps records the planned Services (virtual IPs, node ports, endpoints, a LoadBalancer's
// ingress) when they change, and deletes the records of Services gone.
func (m *Master) serviceOps(plan reconcile.ServicePlan) []clientv3.Op {
	prev := map[string]reconcile.ServiceState{}
	for _, kv := range m.view.services.List() {
		prev[kv.Key] = kv.Value
	}
	for _, e := range plan.Errors {
		m.log.Warn("service", "err", e)
	}
	var ops []clientv3.Op
	seen := map[string]bool{}
	for _, s := range plan.Services {
		key := serviceKey(s.Namespace, s.Name)
		seen[key] = true
		if p, ok := prev[key]; ok && sameJSON(p, s) {
			continue
		}
		ops = append(ops, putOp(key, s))
	}
	for key := range prev {
		if !seen[key] {
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	return ops
}
