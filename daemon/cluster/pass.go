package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
	"github.com/shoal-dev/shoal/runtime"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// reconcile runs one pass of the controllers and applies the plan.
func (m *Master) reconcile(ctx context.Context, lead *store.Leadership) (time.Duration, error) {
	start := time.Now()
	defer func() { m.cfg.Metrics.ReconcileDuration.Observe(time.Since(start).Seconds()) }()
	// Read what the previous pass wrote: the view must have caught up with it.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := m.view.mirror.WaitFor(wctx, m.wrote)
	cancel()
	if err != nil {
		return 0, err
	}
	appliedKV, found := m.view.applied.Get(appliedKey)
	applied := appliedKV.Value
	var objs []manifests.Object
	if found {
		if objs, err = m.desired(ctx, applied.SHA); err != nil {
			return 0, err
		}
	}
	obs := m.observed()
	pods := obs.Pods
	podCIDRs := map[string]netip.Prefix{}
	for _, kv := range m.view.podCIDRs.List() {
		if kv.Value.IsValid() {
			podCIDRs[strings.TrimPrefix(kv.Key, podCIDRsPrefix)] = kv.Value
		}
	}
	svcIPs, nodePorts, served := m.serviceInputs()
	conds := map[string][]manifests.DeploymentCondition{}
	for _, kv := range m.view.deployments.List() {
		conds[kv.Value.Namespace+"/"+kv.Value.Name] = kv.Value.Status.Conditions
	}
	jobs := byObject(m.view.jobs, func(j reconcile.JobStatus) (string, string) { return j.Namespace, j.Name })
	cronJobs := byObject(m.view.cronJobs, func(c reconcile.CronJobStatus) (string, string) { return c.Namespace, c.Name })
	claims := byObject(m.view.claims, func(c reconcile.ClaimState) (string, string) { return c.Namespace, c.Name })
	statefulSets := byObject(m.view.statefulSets, func(s reconcile.StatefulSetStatus) (string, string) { return s.Namespace, s.Name })
	autoscalers := byObject(m.view.autoscalers, func(h reconcile.HPAStatus) (string, string) { return h.Namespace, h.Name })
	// The pods' usage matters to autoscalers only: not joined on every pass of a cluster without.
	var podMetrics map[string]reconcile.PodUsage
	if slices.ContainsFunc(objs, func(o manifests.Object) bool { _, ok := o.(*manifests.HorizontalPodAutoscaler); return ok }) {
		podMetrics = m.view.podMetrics()
	}
	deletions := map[string]bool{}
	var doneDeletions []clientv3.Op
	for _, kv := range m.view.deletions.List() {
		if pl, ok := m.view.placement(kv.Value.UID); ok && !pl.Terminating {
			deletions[kv.Value.UID] = true
		} else {
			doneDeletions = append(doneDeletions, clientv3.OpDelete(kv.Key)) // gone, or being deleted
		}
	}
	plan := reconcile.Reconcile(reconcile.State{DeleteRequests: deletions, Autoscalers: autoscalers, PodMetrics: podMetrics, AutoscalerSync: m.cfg.AutoscalerSync, StatefulSets: statefulSets, Claims: claims, CronJobs: cronJobs, Objects: objs, Commit: applied.SHA, Pods: pods, Nodes: obs.Nodes,
		Known: obs.Known, Lost: m.lost, Now: time.Now(), NodeLostGrace: m.cfg.NodeLostGrace,
		ClusterCIDR: m.cfg.ClusterCIDR, PodCIDRs: podCIDRs, DeploymentConditions: conds, Jobs: jobs,
		ServiceCIDR: m.cfg.ServiceCIDR, ServiceIPs: svcIPs, NodePorts: nodePorts, ServedLoadBalancers: served}, randomIDs{})
	// What the plan found of the lost nodes holds whether or not its writes succeed: the next
	// pass starts from it.
	m.lost = plan.Lost
	m.logNodeChanges(plan.NodeChanges)
	// The writes are encoded batch by batch as they are sent, so that a pass that creates
	// thousands of pods never holds every encoded placement at once.
	var ops []pendingOp
	// The CronJobs' and Jobs' statuses go first: a CronJob's Job exists once its record says so,
	// before any of its pods, and a Job's ended pod is deleted only in a batch after the one
	// that records its outcome, so that no outcome is lost or counted twice.
	// Claims before pods too: a pod is placed with its claims' volumes once they are recorded.
	// A released claim's volume is reclaimed before its record goes, so that a pass cut short
	// releases it again rather than leaving its volume behind. A StatefulSet's status keeps the
	// template its pods below a partition are made from: it goes first as well.
	statefulSetOps := statusOps(m.view.statefulSets, plan.StatefulSets, func(s reconcile.StatefulSetStatus) string { return statefulSetKey(s.Namespace, s.Name) })
	// An autoscaler's status holds the replicas its target is planned with: it goes before the
	// pods it scales.
	autoscalerOps := statusOps(m.view.autoscalers, plan.Autoscalers, func(h reconcile.HPAStatus) string { return autoscalerKey(h.Namespace, h.Name) })
	for _, op := range slices.Concat(m.cronJobOps(plan), m.jobOps(plan), m.claimOps(plan), statefulSetOps, autoscalerOps) {
		ops = append(ops, ready(op))
	}
	planClaims := make(map[string]reconcile.ClaimState, len(plan.Claims))
	for _, c := range plan.Claims {
		planClaims[reconcile.ClaimKey(c.Namespace, c.Name)] = c
	}
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case reconcile.CreatePod:
			pl := Placement{Spec: runtime.PodSpec{UID: a.Pod.UID, Pod: a.Pod.Spec, ConfigMaps: a.ConfigMaps, Secrets: a.Secrets,
				Claims: claimVolumes(a.Pod.Spec, planClaims)},
				Node: a.Pod.Node, Owner: a.Pod.Owner, TemplateHash: a.Pod.TemplateHash, Commit: a.Pod.Commit, Created: a.Pod.Created}
			if pl.Created.IsZero() {
				pl.Created = time.Now()
			}
			op, out := m.placementOp(pl)
			m.log.Debug("create pod", "pod", podName(pl), "uid", pl.Spec.UID, "node", out.Node)
			ops = append(ops, op)
		case reconcile.DeletePod:
			pl, ok := m.view.placement(a.UID)
			if !ok {
				continue
			}
			if a.Force {
				ops = append(ops, ready(clientv3.OpDelete(placementKey(nodeOrPending(pl.Node), a.UID))),
					ready(clientv3.OpDelete(statusKey(nodeOrPending(pl.Node), a.UID))))
				continue
			}
			pl.Terminating, pl.Reason = true, a.Reason
			ops = append(ops, lazyPut(placementKey(nodeOrPending(pl.Node), a.UID), pl))
		case reconcile.BindPod:
			pl, ok := m.view.placement(a.UID)
			if !ok {
				continue
			}
			old, reason := pl.Node, pl.Reason
			pl.Node, pl.Reason = a.Node, ""
			pl.Spec.Claims = claimVolumes(pl.Spec.Pod, planClaims)
			if m.cfg.Keys != nil && pl.Spec.Secrets == nil {
				// A pending placement keeps no Secrets: the pod gets those of the desired state.
				pl.Spec.Secrets = reconcile.PodSecrets(objs, pl.Spec.Pod)
			}
			op, out := m.placementOp(pl)
			if out.Node == "" {
				// Still pending: its node has no key to seal its Secrets to.
				if out.Reason != reason {
					ops = append(ops, op)
				}
				continue
			}
			ops = append(ops, ready(clientv3.OpDelete(placementKey(nodeOrPending(old), a.UID))), op)
		case reconcile.SetPodStatus:
			pl, ok := m.view.placement(a.UID)
			if !ok {
				continue
			}
			rec := PodStatusRecord{UID: a.UID, Node: pl.Node, Reported: time.Now(),
				Status: manifests.PodStatus{Phase: a.Phase, Reason: a.Reason, Message: a.Message}}
			if pl.Spec.Pod != nil {
				rec.Namespace, rec.Name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
			}
			ops = append(ops, lazyPut(statusKey(nodeOrPending(pl.Node), a.UID), rec))
		}
	}
	for _, p := range plan.Pending {
		if pl, ok := m.view.placement(p.UID); ok && pl.Reason != p.Reason {
			pl.Reason = p.Reason
			ops = append(ops, lazyPut(placementKey(nodeOrPending(pl.Node), p.UID), pl))
		}
	}
	daemonSetOps := statusOps(m.view.daemonSets, plan.DaemonSets, func(d reconcile.DaemonSetStatus) string { return daemonSetKey(d.Namespace, d.Name) })
	for _, op := range slices.Concat(m.deploymentOps(plan), daemonSetOps, m.serviceOps(plan.Services), doneDeletions, m.stoppedOps()) {
		ops = append(ops, ready(op))
	}
	for _, name := range slices.Sorted(maps.Keys(plan.PodCIDRs)) {
		ops = append(ops, lazyPut(PodCIDRKey(name), plan.PodCIDRs[name]))
		m.log.Info("pod CIDR allocated", "node", name, "cidr", plan.PodCIDRs[name])
	}
	for _, name := range plan.NoPodCIDR {
		m.log.Warn("no pod CIDR left for node", "node", name, "cluster", m.cfg.ClusterCIDR)
	}
	for len(ops) > 0 {
		n := min(len(ops), 64)
		batch := make([]clientv3.Op, n)
		for i := range batch {
			if batch[i], err = ops[i](); err != nil {
				return 0, err
			}
		}
		resp, err := lead.Txn(ctx, batch...)
		if err != nil {
			return 0, err
		}
		m.wrote = max(m.wrote, resp.Header.Revision)
		m.cfg.Metrics.StoreWrites.Add(float64(n))
		ops = ops[n:]
	}
	if err := m.writeReseals(ctx, lead, objs); err != nil {
		return 0, err
	}
	for _, e := range plan.Events {
		m.emit(ctx, lead, Event{Type: e.Type, Reason: e.Reason, Object: objectName(e.Object), Message: e.Message})
	}
	if found && len(plan.Actions) == 0 {
		m.markConverged(ctx, lead, applied.SHA, plan, pods)
	}
	m.cfg.Metrics.setPods(pods)
	return plan.RequeueAfter, nil
}

// claimOps reclaims the volumes of the released claims whose reclaim policy is Delete, then
// records the claims that changed and forgets the released ones.
func (m *Master) claimOps(plan reconcile.Plan) []clientv3.Op {
	var ops []clientv3.Op
	for _, c := range plan.ReleasedClaims {
		if c.Node != "" && c.ReclaimPolicy != manifests.ReclaimRetain {
			ops = append(ops, putOp(reclaimKey(c.Node, c.UID), ReclaimRecord{UID: c.UID, Namespace: c.Namespace, Name: c.Name, Released: time.Now()}))
		}
	}
	return append(ops, statusOps(m.view.claims, plan.Claims, func(c reconcile.ClaimState) string { return claimKey(c.Namespace, c.Name) })...)
}

// claimVolumes is the volumes of the claims a pod uses, by claim name; nil when it uses none.
func claimVolumes(pod *manifests.Pod, claims map[string]reconcile.ClaimState) map[string]runtime.ClaimVolume {
	if pod == nil {
		return nil
	}
	var out map[string]runtime.ClaimVolume
	for _, name := range reconcile.PodClaims(&pod.Spec) {
		c, ok := claims[reconcile.ClaimKey(pod.Namespace, name)]
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]runtime.ClaimVolume{}
		}
		out[name] = runtime.ClaimVolume{UID: c.UID}
	}
	return out
}

// logNodeChanges logs what the plan found of lost nodes.
func (m *Master) logNodeChanges(changes []reconcile.NodeChange) {
	for _, c := range changes {
		switch c.What {
		case reconcile.NodeNotRegistered:
			m.log.Warn("node not registered", "node", c.Node)
		case reconcile.NodeRemoved:
			m.log.Warn("node removed", "node", c.Node)
		case reconcile.NodeBack:
			m.log.Info("node registered again", "node", c.Node)
		case reconcile.NodeForgotten:
			m.log.Info("node no longer lost: no pod is placed on it", "node", c.Node)
		}
	}
}

// markConverged records when the applied commit's pods were all Ready.
func (m *Master) markConverged(ctx context.Context, lead *store.Leadership, sha string, plan reconcile.Plan, pods []reconcile.Pod) {
	if len(plan.Pending) > 0 {
		return
	}
	for _, d := range plan.Deployments {
		if !d.Complete {
			return
		}
	}
	for _, d := range plan.DaemonSets {
		if !d.Complete {
			return
		}
	}
	for _, s := range plan.StatefulSets {
		if !s.Complete {
			return
		}
	}
	for _, j := range plan.Jobs {
		if j.CreatedBy == "" && !j.Condition(manifests.JobComplete) {
			return // a commit's Job converges when it completes
		}
	}
	for _, p := range pods {
		if strings.HasPrefix(p.Owner, "Job/") {
			continue // counted by their Job
		}
		if _, lost := plan.Lost[p.Node]; lost && strings.HasPrefix(p.Owner, "DaemonSet/") {
			continue // a DaemonSet's pod stays on a lost node, and comes back with it
		}
		if p.Terminating || (!p.Ready && p.Phase != manifests.PodSucceeded) {
			return
		}
	}
	rec, _, found, err := store.Get[CommitRecord](ctx, m.cfg.Store, seenKey(sha))
	if err != nil {
		m.log.Warn("read the commit to mark it converged; trying again on the next pass", "sha", sha, "err", err)
		return
	}
	if !found || !rec.ConvergedAt.IsZero() {
		return
	}
	rec.ConvergedAt = time.Now()
	if _, err := lead.Txn(ctx, putOp(seenKey(sha), rec), putOp(convergedKey, sha)); err != nil {
		m.log.Warn("mark the commit converged; trying again on the next pass", "sha", sha, "err", err)
		return
	}
	d := rec.ConvergedAt.Sub(rec.SeenAt)
	m.cfg.Metrics.CommitToConverged.Observe(d.Seconds())
	m.log.Info("converged", "sha", sha, "after", d.Round(time.Millisecond))
	m.emit(ctx, lead, Event{Type: "Normal", Reason: "Converged", Object: "Commit " + short7(sha),
		Message: fmt.Sprintf("every pod Ready %s after the commit was seen", d.Round(time.Millisecond))})
}

// pendingOp makes a write when it is sent (encoding it, or sealing what it holds).
type pendingOp func() (clientv3.Op, error)

// lazyPut is the put of v under key, encoded when it is sent. v must not change until then.
func lazyPut(key string, v any) pendingOp {
	return func() (clientv3.Op, error) { return putOp(key, v), nil }
}

// ready is a write made already.
func ready(op clientv3.Op) pendingOp { return func() (clientv3.Op, error) { return op, nil } }

func putOp(key string, v any) clientv3.Op {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %s: %v", key, err)) // only our own records are written
	}
	return clientv3.OpPut(key, string(data))
}

func nodeOrPending(node string) string {
	if node == "" {
		return "-"
	}
	return node
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// randomIDs gives new pods random UIDs and name suffixes.
type randomIDs struct{}

func (randomIDs) NewUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (randomIDs) Suffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = reconcile.SuffixAlphabet[int(b[i])%len(reconcile.SuffixAlphabet)]
	}
	return string(b)
}

// byObject is a table's records by the "namespace/name" of their object, as reconcile.State
// takes them.
func byObject[T any](t *store.Table[T], key func(T) (string, string)) map[string]T {
	out := make(map[string]T, t.Len())
	for _, kv := range t.List() {
		ns, name := key(kv.Value)
		out[reconcile.ClaimKey(ns, name)] = kv.Value
	}
	return out
}
