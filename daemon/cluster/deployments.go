package cluster

import (
	"maps"
	"slices"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/reconcile"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// deploymentOps records the Deployments' rollout status when it changed.
func (m *Master) deploymentOps(plan reconcile.Plan) []clientv3.Op {
	recs := make([]DeploymentRecord, len(plan.Deployments))
	for i, d := range plan.Deployments {
		recs[i] = DeploymentRecord{Namespace: d.Namespace, Name: d.Name, Status: d.DeploymentStatus, Commit: d.ObservedCommit, Complete: d.Complete}
	}
	return statusOps(m.view.deployments, recs, func(d DeploymentRecord) string { return deploymentKey(d.Namespace, d.Name) })
}

// cronJobOps records the CronJobs' statuses when they changed, and forgets those of CronJobs
// no longer in the plan.
func (m *Master) cronJobOps(plan reconcile.Plan) []clientv3.Op {
	return statusOps(m.view.cronJobs, plan.CronJobs, func(c reconcile.CronJobStatus) string { return cronJobKey(c.Namespace, c.Name) })
}

// jobOps records the Jobs' statuses when they changed, and forgets those of Jobs no longer in
// the plan.
func (m *Master) jobOps(plan reconcile.Plan) []clientv3.Op {
	return statusOps(m.view.jobs, plan.Jobs, func(j reconcile.JobStatus) string { return jobKey(j.Namespace, j.Name) })
}

// statusOps writes each status of the plan whose record differs from the one in the table,
// and deletes the records the plan has no status for.
func statusOps[T any](table *store.Table[T], statuses []T, keyOf func(T) string) []clientv3.Op {
	prev := map[string]T{}
	for _, kv := range table.List() {
		prev[kv.Key] = kv.Value
	}
	var ops []clientv3.Op
	seen := map[string]bool{}
	for _, st := range statuses {
		key := keyOf(st)
		seen[key] = true
		if p, ok := prev[key]; ok && sameJSON(p, st) {
			continue
		}
		ops = append(ops, putOp(key, st))
	}
	for _, key := range slices.Sorted(maps.Keys(prev)) {
		if !seen[key] {
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	return ops
}
