package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/daemon/sealing"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/volumes"
)

// AgentConfig configures a node agent.
type AgentConfig struct {
	Node    string
	Store   *store.Client
	Runtime runtime.Runtime
	// Record is the node's registration; the agent keeps its counters and heartbeat current.
	Record NodeRecord
	TTL    time.Duration
	Logger *slog.Logger
	// HostPorts forwards the host ports of the node's pods; nil when the node has no pod
	// network, and then pods that ask for a hostPort are refused.
	HostPorts HostPortForwarder
	// Volumes holds the volumes of the PersistentVolumeClaims of the node's pods; nil when the
	// node keeps none, and then pods that use a claim are held Pending.
	Volumes *volumes.Dir
	// MetricsInterval is how often the agent measures the CPU and memory of the node's pods and
	// writes the node's NodeMetrics (0: DefaultMetricsInterval; negative: never).
	MetricsInterval time.Duration
	// Keys are the node's: it publishes Keys.NodeCert in its known record, and opens with
	// Keys.NodeKey the Secrets the master seals to it. Nil on an external store.
	Keys *Keys
}

// Agent runs the pods the master places on this node and reports their status.
type Agent struct {
	cfg AgentConfig
	log *slog.Logger

	mu sync.Mutex
	// placed are this node's placements, kept by follow; following is set once they were read.
	placed    *store.Table[Placement]
	reclaims  *store.Table[ReclaimRecord]
	following atomic.Bool
	written   *NodeRecord       // the node record last written, by sync only
	reported  map[string]string // UID -> the refusal last reported for a pod the node refused
	// lastStatus is, by UID, the status last reported (condition times left out) and since
	// when the pod was Ready, so that an unchanged pod is not written again.
	lastStatus map[string]reportedStatus
	readySince map[string]time.Time
	stopping   map[string]bool // UIDs of pods being stopped
	stops      sync.WaitGroup
	// hostPortVerdicts holds the admission of pods with host ports: "" admitted, else why the
	// pod was refused. hostPortNotes says why the network plane did not forward a pod's ports.
	hostPortVerdicts map[string]string
	hostPortNotes    map[string]string

	// recipient opens the Secrets sealed to this node (nil, with recipientErr, when its key is
	// unusable); opened keeps them by pod UID while the sealed value is the same. Only sync uses
	// opened.
	recipient    *sealing.Recipient
	recipientErr error
	opened       map[string]openedSecrets
}

// openedSecrets are a placement's Secrets, opened from its sealed value.
type openedSecrets struct {
	sealed  string
	secrets map[string]*manifests.Secret
}

// NewAgent returns an agent.
func NewAgent(cfg AgentConfig) *Agent {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.MetricsInterval == 0 {
		cfg.MetricsInterval = DefaultMetricsInterval
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent"), reported: map[string]string{}, lastStatus: map[string]reportedStatus{}, readySince: map[string]time.Time{}, stopping: map[string]bool{},
		hostPortVerdicts: map[string]string{}, opened: map[string]openedSecrets{}}
	if cfg.Keys != nil {
		if cfg.Keys.NodeKey == nil {
			a.recipientErr = errors.New("the node has no key")
		} else {
			a.recipient, a.recipientErr = sealing.NewRecipient(cfg.Keys.NodeKey)
		}
	}
	return a
}

// Run registers the node and syncs its pods until ctx ends. Losing the store never stops a pod:
// the agent keeps what runs and converges again when the store is back.
func (a *Agent) Run(ctx context.Context) error {
	rec := a.cfg.Record
	rec.Name, rec.StartedAt = a.cfg.Node, time.Now()
	var reg *store.Registration
	for reg == nil {
		r, err := a.cfg.Store.Register(ctx, nodeKey(a.cfg.Node), rec, a.cfg.TTL)
		if err == nil {
			reg = r
			break
		}
		a.log.Warn("register node; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	defer reg.Close()
	// The known record also publishes the node's certificate, for the master to seal the
	// node's Secrets to; it is written again until it is written.
	known := rec
	if a.cfg.Keys != nil {
		known.Certificate = a.cfg.Keys.NodeCert
	}
	recordKnown := func() bool {
		if err := store.Put(ctx, a.cfg.Store, knownKey(a.cfg.Node), known); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("record the node; trying again", "err", err)
			}
			return false
		}
		return true
	}
	knownWritten := recordKnown()

	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer a.stops.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.follow(ctx, poke)
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.cfg.Runtime.Changes():
				poke()
			}
		}
	}()
	if every := a.cfg.MetricsInterval; every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.reportMetrics(ctx, reg, every)
		}()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
		if !knownWritten {
			knownWritten = recordKnown()
		}
		a.sync(ctx, reg, &rec)
	}
}

// follow reads this node's placements into a.placed (a store mirror: one watch, which only this
// node's placements change), trying again every second while the store does not answer, and
// pokes on every change. Until they are read, sync changes nothing. The node follows nothing
// else: a commit that changes no pod of this node sends it no event and makes it write nothing.
func (a *Agent) follow(ctx context.Context, poke func()) {
	m := store.NewMirror(a.cfg.Store, placementPrefix+a.cfg.Node+"/")
	a.placed = store.Track(m, placementPrefix+a.cfg.Node+"/", func(string, *Placement, *Placement) { poke() })
	for {
		err := m.Start(ctx)
		if err == nil {
			break
		}
		a.log.Warn("read placements; pods keep running", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	rm := store.NewMirror(a.cfg.Store, reclaimPrefix+a.cfg.Node+"/")
	a.reclaims = store.Track(rm, reclaimPrefix+a.cfg.Node+"/", func(string, *ReclaimRecord, *ReclaimRecord) { poke() })
	for {
		err := rm.Start(ctx)
		if err == nil {
			break
		}
		a.log.Warn("read the volumes to reclaim", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	a.following.Store(true)
	poke()
}

// sync makes the runtime run what is placed here and reports what runs.
func (a *Agent) sync(ctx context.Context, reg *store.Registration, rec *NodeRecord) {
	if !a.following.Load() {
		return // never read from the store: change nothing
	}
	placements := a.placed.List()
	placed := make(map[string]Placement, len(placements))
	for _, kv := range placements {
		placed[kv.Value.Spec.UID] = kv.Value
	}

	rt := a.cfg.Runtime
	running, err := rt.Pods(ctx)
	if err != nil {
		a.log.Warn("list pods", "err", err)
		return
	}
	have := map[string]runtime.PodState{}
	for _, p := range running {
		have[p.UID] = p
	}
	// Host ports first: a pod's ports are declared before it starts, so that they work as soon
	// as its network is set up, and a pod whose ports are taken does not start.
	hold := a.hostPortAdmission(ctx, placed, have)
	for uid, pl := range placed {
		if pl.Terminating {
			a.mu.Lock()
			busy := a.stopping[uid] || a.reported[uid] == reportedStopped
			a.stopping[uid] = true
			a.mu.Unlock()
			if !busy {
				a.stops.Add(1)
				go func() {
					defer a.stops.Done()
					a.stop(ctx, pl)
				}()
			}
			continue
		}
		if hold[uid] {
			continue
		}
		spec := pl.Spec
		if len(spec.Claims) > 0 {
			_, running := have[uid]
			claims, err := a.claimVolumes(pl, running)
			if err != nil {
				a.reportHeld(ctx, pl, ReasonFailedMount, err.Error())
				continue
			}
			spec.Claims = claims
		}
		if pl.SealedSecrets != nil {
			secrets, err := a.openSecrets(pl)
			if err != nil {
				if _, running := have[uid]; running {
					continue // it runs with what it was started with
				}
				a.reportHeld(ctx, pl, ReasonSecretsUnreadable, err.Error())
				continue
			}
			spec.Secrets = secrets
		}
		if err := rt.EnsurePod(ctx, &spec); err != nil {
			a.log.Warn("ensure pod", "pod", podName(pl), "err", err)
		}
	}
	// Pods no placement wants: left from before a restart, or placed elsewhere while this node
	// was cut off. The store answered, so they are really unwanted.
	for uid, p := range have {
		if _, ok := placed[uid]; !ok {
			a.log.Info("removing a pod that is no longer placed here", "pod", p.Namespace+"/"+p.Name, "uid", uid)
			if err := rt.RemovePod(ctx, uid, nil); err != nil {
				a.log.Warn("remove pod", "uid", uid, "err", err)
			}
			a.forget(ctx, uid, true)
		}
	}
	for key := range a.opened {
		if _, ok := placed[key]; !ok {
			delete(a.opened, key)
		}
	}
	a.mu.Lock()
	for uid, r := range a.reported {
		if _, ok := placed[uid]; !ok && r == reportedStopped {
			delete(a.reported, uid) // the master deleted the placement
		}
	}
	a.mu.Unlock()
	a.reclaim(ctx, placed)
	// Report.
	desired, ready := 0, 0
	for uid, pl := range placed {
		if pl.Terminating {
			continue
		}
		desired++
		st, ok := have[uid]
		if !ok {
			continue
		}
		// A pod that ran to its end (a Job's) runs as placed, as a Ready one does.
		ended := st.Status.Phase == manifests.PodSucceeded || st.Status.Phase == manifests.PodFailed
		if PodReady(st.Status) || (ended && pl.Spec.Pod != nil && pl.Spec.Pod.Spec.RestartPolicy != manifests.RestartPolicyAlways) {
			ready++
		}
		a.report(ctx, uid, st)
	}
	rec.PodsDesired, rec.PodsRunning, rec.Heartbeat = desired, ready, time.Now()
	// The record is rewritten when it changed, and for its heartbeat every heartbeatEvery
	// (every second on a node with a store member, whose freshness the master checks before it
	// hands the store's leadership to it): liveness is the lease, so that a thousand nodes do
	// not write a thousand records a second.
	every := heartbeatEvery
	if rec.Store == "member" {
		every = time.Second
	}
	if a.written != nil && sameRecord(*a.written, *rec) && time.Since(a.written.Heartbeat) < every-100*time.Millisecond {
		rec.Heartbeat = a.written.Heartbeat
		return
	}
	if err := reg.Update(ctx, rec); err != nil {
		if ctx.Err() == nil {
			a.log.Debug("update node record", "err", err)
		}
		return
	}
	w := *rec
	a.written = &w
}

// heartbeatEvery is how often a node that runs no store member rewrites its unchanged record.
const heartbeatEvery = 10 * time.Second

// sameRecord reports whether two node records differ in nothing but their heartbeat.
func sameRecord(a, b NodeRecord) bool {
	a.Heartbeat, b.Heartbeat = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func podName(pl Placement) string {
	if pl.Spec.Pod == nil {
		return pl.Spec.UID
	}
	return pl.Spec.Pod.Namespace + "/" + pl.Spec.Pod.Name
}

// reportedStopped marks, in Agent.reported, a terminating pod the node stopped and reported so.
const reportedStopped = "stopped"

// stop removes a terminating pod, then reports it stopped: a node may not write placements, so
// the master deletes the placement and the status (PodStatusRecord.Stopped).
func (a *Agent) stop(ctx context.Context, pl Placement) {
	uid := pl.Spec.UID
	defer func() {
		a.mu.Lock()
		delete(a.stopping, uid)
		a.mu.Unlock()
	}()
	if err := a.cfg.Runtime.RemovePod(ctx, uid, nil); err != nil {
		a.log.Warn("stop pod", "pod", podName(pl), "err", err)
		return
	}
	// The master sees the pod as it was last reported (how a Job counts it does not change),
	// marked stopped.
	a.mu.Lock()
	last, reported := a.lastStatus[uid]
	a.mu.Unlock()
	a.forget(ctx, uid, false)
	rec := PodStatusRecord{UID: uid, Node: a.cfg.Node, Reported: time.Now(), Stopped: true,
		Status: manifests.PodStatus{Phase: manifests.PodPending, Reason: "Stopped", Message: "the node stopped the pod"}}
	if reported {
		rec.Status, rec.ReadySince = last.status, last.since
	}
	if pl.Spec.Pod != nil {
		rec.Namespace, rec.Name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
	}
	if err := store.Put(ctx, a.cfg.Store, statusKey(a.cfg.Node, uid), rec); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("report a stopped pod; trying again", "pod", podName(pl), "err", err)
		}
		return
	}
	a.mu.Lock()
	a.reported[uid] = reportedStopped
	a.mu.Unlock()
}

// forget forgets a gone pod and, with deleteStatus, deletes its status.
func (a *Agent) forget(ctx context.Context, uid string, deleteStatus bool) {
	if deleteStatus {
		if err := store.Delete(ctx, a.cfg.Store, statusKey(a.cfg.Node, uid)); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("delete the status of a pod", "uid", uid, "err", err)
		}
	}
	a.mu.Lock()
	delete(a.reported, uid)
	delete(a.lastStatus, uid)
	delete(a.readySince, uid)
	delete(a.hostPortVerdicts, uid)
	a.mu.Unlock()
}

// report writes a pod's status when it changed (ignoring condition times).
func (a *Agent) report(ctx context.Context, uid string, st runtime.PodState) {
	a.mu.Lock()
	ready := PodReady(st.Status)
	since, had := a.readySince[uid]
	switch {
	case ready && !had:
		since = time.Now()
		a.readySince[uid] = since
	case !ready:
		delete(a.readySince, uid)
		since = time.Time{}
	}
	st.Status = withHostPortNote(st.Status, a.hostPortNotes[uid])
	cur := reportedStatus{status: withoutConditionTimes(st.Status), since: since}
	if last, ok := a.lastStatus[uid]; ok && last.since.Equal(cur.since) && reflect.DeepEqual(last.status, cur.status) {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	rec := PodStatusRecord{UID: uid, Namespace: st.Namespace, Name: st.Name, Node: a.cfg.Node, Status: st.Status, ReadySince: since, Reported: time.Now()}
	if err := store.Put(ctx, a.cfg.Store, statusKey(a.cfg.Node, uid), rec); err != nil {
		a.log.Debug("report status", "pod", st.Namespace+"/"+st.Name, "err", err)
		return
	}
	a.mu.Lock()
	a.lastStatus[uid] = cur
	delete(a.reported, uid)
	a.mu.Unlock()
}

// reportedStatus is what report last wrote of a pod.
type reportedStatus struct {
	status manifests.PodStatus
	since  time.Time
}

// withoutConditionTimes is s with its conditions' times left out: a pod whose status differs
// only in them has not changed. (Comparing a copy is much cheaper than encoding it, which a node
// did for each of its pods every second.)
func withoutConditionTimes(s manifests.PodStatus) manifests.PodStatus {
	c := s
	c.Conditions = make([]manifests.PodCondition, len(s.Conditions))
	for i, cond := range s.Conditions {
		cond.LastTransitionTime, cond.LastProbeTime = manifests.Time{}, manifests.Time{}
		c.Conditions[i] = cond
	}
	return c
}

// ReasonSecretsUnreadable is the reason of a pod the node holds Pending because it cannot open
// the Secrets the master sealed for it (sealed to another key than the node's: the master seals
// them again once it sees the node's certificate).
const ReasonSecretsUnreadable = "SecretsUnreadable"

// openSecrets opens the Secrets sealed into a placement with the node's key, once per sealed
// value.
func (a *Agent) openSecrets(pl Placement) (map[string]*manifests.Secret, error) {
	uid := pl.Spec.UID
	if o, ok := a.opened[uid]; ok && o.sealed == string(pl.SealedSecrets) {
		return o.secrets, nil
	}
	if a.recipient == nil {
		err := a.recipientErr
		if err == nil {
			err = errors.New("the node keeps no key (an external store)")
		}
		return nil, fmt.Errorf("the pod's Secrets are sealed to the node's key, and %w", err)
	}
	plain, err := a.recipient.Open([]byte(placementKey(a.cfg.Node, uid)), pl.SealedSecrets)
	if err != nil {
		return nil, fmt.Errorf("the pod's Secrets are sealed to key %s, not to this node's %s (its certificate changed?): the master seals them again to the key the node publishes: %w",
			pl.SealedTo, a.recipient.Fingerprint, err)
	}
	var secrets map[string]*manifests.Secret
	if err := json.Unmarshal(plain, &secrets); err != nil {
		return nil, fmt.Errorf("the pod's sealed Secrets: %w", err)
	}
	a.opened[uid] = openedSecrets{sealed: string(pl.SealedSecrets), secrets: secrets}
	return secrets, nil
}
