package cluster

import (
	"github.com/shoal-dev/shoal/reconcile"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// deploymentOps records the Deployments' rollout status when it changed.
func (m *Master) deploymentOps(plan reconcile.Plan) []clientv3.Op {
	old := m.view.deployments.List()
	prev := map[string]DeploymentRecord{}
	for _, kv := range old {
		prev[kv.Key] = kv.Value
	}
	var ops []clientv3.Op
	seen := map[string]bool{}
	for _, d := range plan.Deployments {
		key := deploymentKey(d.Namespace, d.Name)
		seen[key] = true
		rec := DeploymentRecord{Namespace: d.Namespace, Name: d.Name, Status: d.DeploymentStatus, Commit: d.ObservedCommit, Complete: d.Complete}
		if p, ok := prev[key]; ok && sameJSON(p, rec) {
			continue
		}
		ops = append(ops, putOp(key, rec))
	}
	for key := range prev {
		if !seen[key] {
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	return ops
}

// jobOps records the Jobs' statuses when they changed, and forgets those of Jobs no longer in
// the plan.
func (m *Master) jobOps(plan reconcile.Plan) []clientv3.Op {
	prev := map[string]reconcile.JobStatus{}
	for _, kv := range m.view.jobs.List() {
		prev[kv.Key] = kv.Value
	}
	var ops []clientv3.Op
	seen := map[string]bool{}
	for _, j := range plan.Jobs {
		key := jobKey(j.Namespace, j.Name)
		seen[key] = true
		if p, ok := prev[key]; ok && sameJSON(p, j) {
			continue
		}
		ops = append(ops, putOp(key, j))
	}
	for key := range prev {
		if !seen[key] {
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	return ops
}
