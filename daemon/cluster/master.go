package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
	"github.com/shoal-dev/shoal/runtime"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Git is what the master needs of the repository (package gitsync implements it).
type Git interface {
	// Tree returns the whole tree of commit sha and the directory in it that
	// holds the manifests ("." for the root): kustomizations there may use
	// files elsewhere in the repository, such as ../base.
	Tree(ctx context.Context, sha string) (repo fs.FS, dir string, err error)
	Commit(ctx context.Context, sha string) (CommitInfo, error)
	IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error)
	Verify(ctx context.Context, from, to string, keyring string) error
}

// CommitInfo describes a commit.
type CommitInfo struct {
	SHA, Author, Message string
	Time                 time.Time
}

// Head is a commit the repository's ref pointed to, and when this node saw it.
type Head struct {
	SHA    string
	SeenAt time.Time
}

// MasterConfig configures the master.
type MasterConfig struct {
	Node  string
	Store *store.Client
	Git   Git
	// Keyring, when set, is an armored OpenPGP keyring: every new commit must be signed by it.
	Keyring       string
	Load          manifests.LoadOptions
	NodeLostGrace time.Duration
	// ServiceCIDR is where Services get their virtual IPs (default 10.96.0.0/16).
	ServiceCIDR netip.Prefix
	// ClusterCIDR is where nodes get their pod CIDRs, one /24 each (default 10.244.0.0/16).
	ClusterCIDR netip.Prefix
	Metrics     *Metrics
	Logger      *slog.Logger
	// AvoidStoreLeader is set on a node that runs a store member: while it is master, it hands
	// the store's leadership to another member, so that losing this node costs one lease TTL
	// and not also a store election (which renews every lease).
	AvoidStoreLeader bool
}

// Default address ranges of a cluster.
var (
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	DefaultClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
)

// Master accepts commits and runs the controllers while this daemon leads the election.
type Master struct {
	cfg MasterConfig
	log *slog.Logger

	mu      sync.Mutex
	head    Head
	headCh  chan struct{}
	objects map[string][]manifests.Object // desired objects by commit

	// lost is the last plan's Plan.Lost, which the next pass gives the planner back as
	// State.Lost. Only Run's goroutine uses it.
	lost map[string]time.Time

	eventLease      clientv3.LeaseID
	eventLeaseUntil time.Time

	// view is the store as this term's passes read it, kept in memory by watches; wrote is
	// the revision of the term's last write, which a pass waits for the view to reach.
	view  *masterView
	wrote int64
}

// masterView is what the master reads of the store, mirrored in memory: listed once when a
// term starts, then kept current by one watch, so that a pass reads no more of the store than
// what changed.
type masterView struct {
	mirror      *store.Mirror
	applied     *store.Table[AppliedRecord]
	placements  *store.Table[Placement]
	status      *store.Table[PodStatusRecord]
	nodes       *store.Table[NodeRecord]
	known       *store.Table[NodeRecord]
	cordons     *store.Table[CordonRecord]
	services    *store.Table[ServiceRecord]
	podCIDRs    *store.Table[string]
	deployments *store.Table[DeploymentRecord]
}

// newMasterView mirrors what the master reads. poke is called (with the mirror's lock held) on
// every change that is worth a pass: the applied commit, placements, pod status, cordons, and
// what the controllers use of a node record (its presence, labels, addresses, allocatable
// resources, schedulability, taints and the node ports it serves) — not a new heartbeat alone.
func newMasterView(c *store.Client, poke func()) *masterView {
	mir := store.NewMirror(c, prefix)
	appliedChange := func(string, *AppliedRecord, *AppliedRecord) { poke() }
	nodeChange := func(_ string, old, new *NodeRecord) {
		if old == nil || new == nil || nodeFacts(*old) != nodeFacts(*new) {
			poke()
		}
	}
	return &masterView{
		mirror:      mir,
		applied:     store.Track(mir, appliedKey, appliedChange),
		placements:  store.Track(mir, placementPrefix, func(string, *Placement, *Placement) { poke() }),
		status:      store.Track(mir, statusPrefix, func(string, *PodStatusRecord, *PodStatusRecord) { poke() }),
		nodes:       store.Track(mir, nodesPrefix, nodeChange),
		known:       store.Track(mir, knownPrefix, func(string, *NodeRecord, *NodeRecord) { poke() }),
		cordons:     store.Track(mir, cordonPrefix, func(string, *CordonRecord, *CordonRecord) { poke() }),
		services:    store.Track[ServiceRecord](mir, servicesPrefix, nil),
		podCIDRs:    store.Track[string](mir, podCIDRsPrefix, nil),
		deployments: store.Track[DeploymentRecord](mir, deploymentsPrefix, nil),
	}
}

// nodeFacts is what the controllers use of a node record.
func nodeFacts(n NodeRecord) string {
	return fmt.Sprint(n.Labels, n.Allocatable, n.Unschedulable, n.Addresses, n.Taints, n.NodePorts, n.ReservedPorts)
}

// NewMaster returns a master; Run it with a leadership.
func NewMaster(cfg MasterConfig) *Master {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if !cfg.ServiceCIDR.IsValid() {
		cfg.ServiceCIDR = DefaultServiceCIDR
	}
	if !cfg.ClusterCIDR.IsValid() {
		cfg.ClusterCIDR = DefaultClusterCIDR
	}
	return &Master{cfg: cfg, log: cfg.Logger.With("component", "master"), headCh: make(chan struct{}, 1),
		objects: map[string][]manifests.Object{}}
}

// SetHead tells the master the newest commit of the repository. Safe to call at any time.
func (m *Master) SetHead(h Head) {
	m.mu.Lock()
	m.head = h
	m.mu.Unlock()
	select {
	case m.headCh <- struct{}{}:
	default:
	}
}

// Run acts as master until the leadership is lost or ctx ends. It returns store.ErrNotLeader
// when another daemon took over.
func (m *Master) Run(ctx context.Context, lead *store.Leadership) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lead.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	m.log.Info("acting as master", "node", m.cfg.Node, "fence", lead.Rev)
	m.emit(ctx, lead, Event{Type: "Normal", Reason: "MasterElected", Object: "Node " + m.cfg.Node, Message: "became master", Node: m.cfg.Node})

	changes := make(chan struct{}, 1)
	poke := func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	view := newMasterView(m.cfg.Store, poke)
	if err := view.mirror.Start(ctx); err != nil {
		return fmt.Errorf("read the cluster's state: %w", err)
	}
	m.mu.Lock()
	m.view, m.wrote = view, 0
	m.mu.Unlock()
	if m.cfg.AvoidStoreLeader {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			m.avoidStoreLeader(ctx)
		}()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	// A head to accept: the newest one known when this term starts (a previous term may have
	// ended before accepting it), and any that arrives; kept after a failure, to try again.
	m.mu.Lock()
	headPending := m.head.SHA != ""
	m.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			if lead.Done() != nil {
				select {
				case <-lead.Done():
					return store.ErrNotLeader
				default:
				}
			}
			return ctx.Err()
		case <-m.headCh:
			headPending = true
		case <-changes:
			// Let a burst of changes settle into one pass.
			time.Sleep(10 * time.Millisecond)
		case <-timer.C:
		}
		if headPending {
			m.mu.Lock()
			h := m.head
			m.mu.Unlock()
			err := m.accept(ctx, lead, h)
			switch {
			case errors.Is(err, store.ErrNotLeader):
				return err
			case err != nil && ctx.Err() == nil:
				m.log.Warn("commit; trying again", "sha", h.SHA, "err", err)
			case err == nil:
				headPending = false
			}
		}
		next, err := m.reconcile(ctx, lead)
		if errors.Is(err, store.ErrNotLeader) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			m.log.Warn("reconcile", "err", err)
			next = time.Second
		}
		if next <= 0 || next > time.Second {
			next = time.Second
		}
		timer.Reset(next)
	}
}

// settleTime is how long a node must have run before the store's leadership is handed to its
// member (which catches up with the others after a start).
const settleTime = 5 * time.Second

// avoidStoreLeader checks every second whether this node's store member leads the store and
// hands the leadership to the member of a node that is alive (registered, with a fresh heartbeat)
// when it does. After a
// failed hand-off it waits half a minute before it tries again.
func (m *Master) avoidStoreLeader(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var quietUntil time.Time
	for {
		if time.Now().After(quietUntil) {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			moved, err := m.cfg.Store.HandOffLeadership(cctx, func(name string) store.MemberHealth {
				// Registered, with a heartbeat of the last seconds: a node killed moments ago
				// is still registered until its lease expires.
				rec, _, ok, err := store.Get[NodeRecord](cctx, m.cfg.Store, nodeKey(name))
				switch {
				case err != nil || !ok || time.Since(rec.Heartbeat) > 3*time.Second:
					return store.MemberDown
				case time.Since(rec.StartedAt) < settleTime:
					return store.MemberStarting
				}
				return store.MemberSettled
			})
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				m.log.Warn("hand off the store's leadership; trying again in 30s", "err", err)
				quietUntil = time.Now().Add(30 * time.Second)
			case moved:
				m.log.Info("handed the store's leadership to another member, away from the master's node")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// accept validates a new head and, when it is good, makes its objects the desired state.
func (m *Master) accept(ctx context.Context, lead *store.Leadership, h Head) error {
	if h.SHA == "" {
		return nil
	}
	applied, _, _, err := store.Get[AppliedRecord](ctx, m.cfg.Store, appliedKey)
	if err != nil {
		return err
	}
	if applied.SHA == h.SHA {
		return nil
	}
	prev, _, found, err := store.Get[CommitRecord](ctx, m.cfg.Store, seenKey(h.SHA))
	if err != nil {
		return fmt.Errorf("read commit %s: %w", short7(h.SHA), err)
	}
	if found && prev.Result == ResultRejected {
		return nil // rejected before; a new commit is needed
	}
	info, err := m.cfg.Git.Commit(ctx, h.SHA)
	if err != nil {
		return err
	}
	rec := CommitRecord{SHA: h.SHA, Author: info.Author, Message: info.Message, Time: info.Time, SeenAt: h.SeenAt}
	reject := func(reasons ...string) error {
		rec.Result, rec.Reasons = ResultRejected, reasons
		m.cfg.Metrics.CommitsRejected.Inc()
		m.log.Warn("commit rejected", "sha", h.SHA, "reasons", len(reasons), "first", reasons[0])
		if _, err := lead.Txn(ctx, putOp(seenKey(h.SHA), rec)); err != nil {
			return err
		}
		m.emit(ctx, lead, Event{Type: "Warning", Reason: "CommitRejected", Object: "Commit " + short7(h.SHA), Message: reasons[0]})
		return nil
	}
	if applied.SHA != "" {
		ok, err := m.cfg.Git.IsAncestor(ctx, applied.SHA, h.SHA)
		if err != nil {
			return err
		}
		if !ok {
			return reject(fmt.Sprintf("commit %s does not descend from the applied commit %s: the branch was rewritten (force-push?). Shoal only moves forward; to go back, push a revert commit", short7(h.SHA), short7(applied.SHA)))
		}
	}
	if m.cfg.Keyring != "" {
		if err := m.cfg.Git.Verify(ctx, applied.SHA, h.SHA, m.cfg.Keyring); err != nil {
			return reject("signature check: " + err.Error())
		}
	}
	tree, dir, err := m.cfg.Git.Tree(ctx, h.SHA)
	if err != nil {
		return reject("read the commit's tree: " + err.Error())
	}
	set, err := manifests.LoadFS(ctx, tree, dir, m.cfg.Load)
	if err != nil {
		var list manifests.ErrorList
		if errors.As(err, &list) {
			reasons := make([]string, len(list))
			for i, e := range list {
				reasons[i] = e.Error()
			}
			return reject(reasons...)
		}
		return reject(err.Error())
	}
	// Stage the objects, then flip the applied key: a commit is applied whole or not at all.
	var ops []clientv3.Op
	for _, o := range set.Objects {
		ops = append(ops, putOp(desiredKey(h.SHA, manifests.KeyOf(o)), o))
	}
	for len(ops) > 0 {
		n := min(len(ops), 64)
		if _, err := lead.Txn(ctx, ops[:n]...); err != nil {
			return err
		}
		ops = ops[n:]
	}
	rec.Result, rec.Objects, rec.Warnings = ResultApplied, len(set.Objects), set.Warnings.Warnings()
	// The flip deletes the old commit's objects in the same write: once the new commit is
	// applied, a retry would not come back to them.
	flip := []clientv3.Op{
		putOp(appliedKey, AppliedRecord{SHA: h.SHA, AppliedAt: time.Now(), Objects: len(set.Objects)}),
		putOp(seenKey(h.SHA), rec),
	}
	if applied.SHA != "" {
		flip = append(flip, clientv3.OpDelete(desiredPrefix+applied.SHA+"/", clientv3.WithPrefix()))
	}
	resp, err := lead.Txn(ctx, flip...)
	if err != nil {
		return err
	}
	m.wrote = max(m.wrote, resp.Header.Revision) // the next pass reads the new commit
	m.mu.Lock()
	m.objects = map[string][]manifests.Object{h.SHA: set.Objects}
	m.mu.Unlock()
	m.cfg.Metrics.CommitsApplied.Inc()
	m.log.Info("commit applied", "sha", h.SHA, "objects", len(set.Objects), "warnings", len(rec.Warnings), "message", info.Message)
	for _, w := range rec.Warnings {
		m.log.Warn("commit applied with a warning", "sha", h.SHA, "warning", w)
	}
	m.emit(ctx, lead, Event{Type: "Normal", Reason: "CommitApplied", Object: "Commit " + short7(h.SHA), Message: fmt.Sprintf("%d objects: %s", len(set.Objects), info.Message)})
	return nil
}

func short7(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func putOp(key string, v any) clientv3.Op {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %s: %v", key, err)) // only our own records are written
	}
	return clientv3.OpPut(key, string(data))
}

// desired returns the applied commit's objects, from memory or the store.
func (m *Master) desired(ctx context.Context, sha string) ([]manifests.Object, error) {
	m.mu.Lock()
	objs, ok := m.objects[sha]
	m.mu.Unlock()
	if ok {
		return objs, nil
	}
	kvs, _, err := store.List[json.RawMessage](ctx, m.cfg.Store, desiredPrefix+sha+"/")
	if err != nil {
		return nil, err
	}
	objs, err = decodeObjects(kvs)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.objects = map[string][]manifests.Object{sha: objs}
	m.mu.Unlock()
	return objs, nil
}

// decodeObjects decodes stored desired objects (JSON written by the master).
func decodeObjects(kvs []store.KV[json.RawMessage]) ([]manifests.Object, error) {
	var objs []manifests.Object
	for _, kv := range kvs {
		got, errs := manifests.DecodeFile(kv.Key, kv.Value, manifests.LoadOptions{})
		if errs != nil {
			return nil, fmt.Errorf("stored object %s: %w", kv.Key, errs)
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// observed is the pods, the registered nodes and the known nodes of the view as reconcile sees
// them (State.Pods, Nodes and Known), and the placements by pod UID.
func (m *Master) observed() (reconcile.State, map[string]Placement) {
	pls, sts, nodes := m.view.placements.List(), m.view.status.List(), m.view.nodes.List()
	known := map[string]bool{}
	for _, kv := range m.view.known.List() {
		known[kv.Value.Name] = true
	}
	cordons := m.view.cordons.List()
	cordoned, draining := map[string]bool{}, map[string]bool{}
	for _, kv := range cordons {
		name := strings.TrimPrefix(kv.Key, cordonPrefix)
		cordoned[name], draining[name] = true, kv.Value.Drain
	}
	status := map[string]PodStatusRecord{}
	for _, s := range sts {
		status[s.Value.UID] = s.Value
	}
	var rnodes []reconcile.Node
	for _, n := range nodes {
		rnodes = append(rnodes, reconcile.Node{Name: n.Value.Name, Ready: true, Unschedulable: n.Value.Unschedulable || cordoned[n.Value.Name],
			Draining: draining[n.Value.Name], Labels: n.Value.Labels, Taints: ReconcileTaints(n.Value.Taints),
			Allocatable: reconcile.Resources(n.Value.Allocatable)})
	}
	byUID := map[string]Placement{}
	var pods []reconcile.Pod
	for _, kv := range pls {
		pl := kv.Value
		byUID[pl.Spec.UID] = pl
		p := reconcile.Pod{UID: pl.Spec.UID, Owner: pl.Owner, TemplateHash: pl.TemplateHash, Spec: pl.Spec.Pod,
			Node: pl.Node, Commit: pl.Commit, Created: pl.Created, Terminating: pl.Terminating, Phase: manifests.PodPending}
		if pl.Spec.Pod != nil {
			p.Namespace, p.Name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
		}
		if pl.Node == "" {
			p.Reason, p.Message = "Unschedulable", pl.Reason
		}
		if st, ok := status[pl.Spec.UID]; ok {
			p.Phase, p.Ready, p.ReadySince, p.IP = st.Status.Phase, PodReady(st.Status), st.ReadySince, st.Status.PodIP
			p.Reason, p.Message = st.Status.Reason, st.Status.Message
			for _, cs := range st.Status.ContainerStatuses {
				p.Restarts += cs.RestartCount
			}
		}
		pods = append(pods, p)
	}
	return reconcile.State{Pods: pods, Nodes: rnodes, Known: known}, byUID
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
	obs, byUID := m.observed()
	pods := obs.Pods
	podCIDRs := map[string]netip.Prefix{}
	for _, kv := range m.view.podCIDRs.List() {
		if c, err := netip.ParsePrefix(kv.Value); err == nil {
			podCIDRs[strings.TrimPrefix(kv.Key, podCIDRsPrefix)] = c
		}
	}
	svcIPs, nodePorts, served := m.serviceInputs()
	conds := map[string][]manifests.DeploymentCondition{}
	for _, kv := range m.view.deployments.List() {
		conds[kv.Value.Namespace+"/"+kv.Value.Name] = kv.Value.Status.Conditions
	}
	plan := reconcile.Reconcile(reconcile.State{Objects: objs, Commit: applied.SHA, Pods: pods, Nodes: obs.Nodes,
		Known: obs.Known, Lost: m.lost, Now: time.Now(), NodeLostGrace: m.cfg.NodeLostGrace,
		ClusterCIDR: m.cfg.ClusterCIDR, PodCIDRs: podCIDRs, DeploymentConditions: conds,
		ServiceCIDR: m.cfg.ServiceCIDR, ServiceIPs: svcIPs, NodePorts: nodePorts, ServedLoadBalancers: served}, randomIDs{})
	// What the plan found of the lost nodes holds whether or not its writes succeed: the next
	// pass starts from it.
	m.lost = plan.Lost
	m.logNodeChanges(plan.NodeChanges)
	var ops []clientv3.Op
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case reconcile.CreatePod:
			pl := Placement{Spec: runtime.PodSpec{UID: a.Pod.UID, Pod: a.Pod.Spec, ConfigMaps: a.ConfigMaps, Secrets: a.Secrets},
				Node: a.Pod.Node, Owner: a.Pod.Owner, TemplateHash: a.Pod.TemplateHash, Commit: a.Pod.Commit, Created: a.Pod.Created}
			if pl.Created.IsZero() {
				pl.Created = time.Now()
			}
			ops = append(ops, putOp(placementKey(nodeOrPending(pl.Node), pl.Spec.UID), pl))
		case reconcile.DeletePod:
			pl, ok := byUID[a.UID]
			if !ok {
				continue
			}
			if a.Force {
				ops = append(ops, clientv3.OpDelete(placementKey(nodeOrPending(pl.Node), a.UID)),
					clientv3.OpDelete(statusKey(nodeOrPending(pl.Node), a.UID)))
				continue
			}
			pl.Terminating, pl.Reason = true, a.Reason
			ops = append(ops, putOp(placementKey(nodeOrPending(pl.Node), a.UID), pl))
		case reconcile.BindPod:
			pl, ok := byUID[a.UID]
			if !ok {
				continue
			}
			old := pl.Node
			pl.Node, pl.Reason = a.Node, ""
			ops = append(ops, clientv3.OpDelete(placementKey(nodeOrPending(old), a.UID)), putOp(placementKey(a.Node, a.UID), pl))
		case reconcile.SetPodStatus:
			pl, ok := byUID[a.UID]
			if !ok {
				continue
			}
			rec := PodStatusRecord{UID: a.UID, Node: pl.Node, Reported: time.Now(),
				Status: manifests.PodStatus{Phase: a.Phase, Reason: a.Reason, Message: a.Message}}
			if pl.Spec.Pod != nil {
				rec.Namespace, rec.Name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
			}
			ops = append(ops, putOp(statusKey(nodeOrPending(pl.Node), a.UID), rec))
		}
	}
	for _, p := range plan.Pending {
		if pl, ok := byUID[p.UID]; ok && pl.Reason != p.Reason {
			pl.Reason = p.Reason
			ops = append(ops, putOp(placementKey(nodeOrPending(pl.Node), p.UID), pl))
		}
	}
	ops = append(ops, m.deploymentOps(plan)...)
	ops = append(ops, m.serviceOps(plan.Services)...)
	for _, name := range slices.Sorted(maps.Keys(plan.PodCIDRs)) {
		ops = append(ops, putOp(PodCIDRKey(name), plan.PodCIDRs[name].String()))
		m.log.Info("pod CIDR allocated", "node", name, "cidr", plan.PodCIDRs[name])
	}
	for _, name := range plan.NoPodCIDR {
		m.log.Warn("no pod CIDR left for node", "node", name, "cluster", m.cfg.ClusterCIDR)
	}
	for len(ops) > 0 {
		n := min(len(ops), 64)
		resp, err := lead.Txn(ctx, ops[:n]...)
		if err != nil {
			return 0, err
		}
		m.wrote = max(m.wrote, resp.Header.Revision)
		m.cfg.Metrics.StoreWrites.Add(float64(n))
		ops = ops[n:]
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

// objectName turns "Deployment/ns/name" into "Deployment ns/name".
func objectName(o string) string {
	kind, rest, ok := cutFirst(o, "/")
	if !ok {
		return o
	}
	return kind + " " + rest
}

func cutFirst(s, sep string) (string, string, bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

func nodeOrPending(node string) string {
	if node == "" {
		return "-"
	}
	return node
}

// serviceInputs is what the Services were given before, for the planner to keep: their virtual
// IPs (by address), node ports (by "namespace/name/port name") and the LoadBalancer Services
// whose ports are open.
func (m *Master) serviceInputs() (map[netip.Addr]string, map[string]int32, map[string]bool) {
	ips, nodePorts, served := map[netip.Addr]string{}, map[string]int32{}, map[string]bool{}
	for _, kv := range m.view.services.List() {
		r := kv.Value
		if r.Type == string(manifests.ServiceTypeLoadBalancer) && !r.Pending {
			served[r.Namespace+"/"+r.Name] = true
		}
		if ip, err := netip.ParseAddr(r.ClusterIP); err == nil {
			ips[ip] = r.Namespace + "/" + r.Name
		}
		for _, p := range r.Ports {
			if p.NodePort != 0 {
				nodePorts[r.Namespace+"/"+r.Name+"/"+p.Name] = p.NodePort
			}
		}
	}
	return ips, nodePorts, served
}

// serviceOps records the planned Services (virtual IPs, node ports, endpoints), with each
// LoadBalancer's ingress, when they change, and deletes the records of Services gone.
func (m *Master) serviceOps(plan reconcile.ServicePlan) []clientv3.Op {
	prev := map[string]ServiceRecord{}
	for _, kv := range m.view.services.List() {
		prev[kv.Key] = kv.Value
	}
	for _, e := range plan.Errors {
		m.log.Warn("service", "err", e)
	}
	var records []NodeRecord
	for _, kv := range m.view.nodes.List() {
		records = append(records, kv.Value)
	}
	var ops []clientv3.Op
	seen := map[string]bool{}
	for _, s := range plan.Services {
		key := serviceKey(s.Namespace, s.Name)
		seen[key] = true
		rec := serviceRecord(s)
		rec.Ingress = loadBalancerIngress(s, records)
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

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
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
	for _, p := range pods {
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

// emit records an event, kept one to two hours. An event that cannot be written is logged in
// its place: neither a pass nor a commit fails, or writes again, for the sake of an event.
func (m *Master) emit(ctx context.Context, lead *store.Leadership, e Event) {
	if err := m.writeEvent(ctx, lead, e); err != nil {
		m.log.Warn("record an event; it is only logged", "type", e.Type, "reason", e.Reason, "object", e.Object,
			"message", e.Message, "err", err)
	}
}

func (m *Master) writeEvent(ctx context.Context, lead *store.Leadership, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	// Events share a lease of two hours, renewed each hour: each lives one to two hours.
	if time.Now().After(m.eventLeaseUntil) {
		lease, err := m.cfg.Store.Etcd().Grant(ctx, int64(2*time.Hour/time.Second))
		if err != nil {
			return fmt.Errorf("grant the events' lease: %w", err)
		}
		m.eventLease, m.eventLeaseUntil = lease.ID, time.Now().Add(time.Hour)
	}
	key := fmt.Sprintf("%s%020d-%s", eventsPrefix, e.Time.UnixNano(), randomHex(3))
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode the event: %w", err)
	}
	if _, err := lead.Txn(ctx, clientv3.OpPut(key, string(data), clientv3.WithLease(m.eventLease))); err != nil {
		return fmt.Errorf("write the event: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
