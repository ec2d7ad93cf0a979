package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/daemon/sealing"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
	"github.com/shoal-dev/shoal/runtime"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Backend answers the API from the store and the local runtime.
type Backend struct {
	Node    string
	Store   *store.Client
	Runtime runtime.Runtime
	// Keys open the Secrets of the desired state (with Keys.CAKey) and rotate the keyring; nil
	// on an external store. Without the CA key (and on the node-to-node endpoint, Redacted) the
	// Secrets are shown by name alone.
	Keys *Keys
	// Agent is set on an agent, whose store user reads only its own part of the cluster
	// (AgentPermissions): Snapshot reads that part, and the pods it finds are its own.
	Agent bool

	// rotateStep, when set (by tests), is called after each step of a key rotation; an error
	// stops the rotation there, as a crash would.
	rotateStep func(step string) error

	mu       sync.Mutex
	objSHA   string
	objects  []manifests.Object // the decoded desired objects of objSHA
	keyrings keyringCache
}

// Redacted returns a Backend of the same node and store that opens no Secret: for the node's
// endpoint to other nodes, which must not hand them the Secrets of pods they do not run.
func (b *Backend) Redacted() *Backend {
	r := &Backend{Node: b.Node, Store: b.Store, Runtime: b.Runtime, Agent: b.Agent}
	if b.Keys != nil {
		r.Keys = &Keys{CA: b.Keys.CA}
	}
	return r
}

// Snapshot reads the whole cluster state at one revision.
func (b *Backend) Snapshot(ctx context.Context) (*Snapshot, error) {
	resp, err := b.readState(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	s := &Snapshot{Rev: resp.Header.Revision, Now: time.Now(), Statuses: map[string]PodStatusRecord{},
		Deployments: map[string]DeploymentRecord{}, Jobs: map[string]reconcile.JobStatus{}, CronJobs: map[string]reconcile.CronJobStatus{}, DaemonSets: map[string]reconcile.DaemonSetStatus{}, StatefulSets: map[string]reconcile.StatefulSetStatus{}, Autoscalers: map[string]reconcile.HPAStatus{}, Claims: map[string]reconcile.ClaimState{}, Services: map[string]reconcile.ServiceState{},
		Metrics: map[string]NodeMetrics{}}
	var desired []store.KV[json.RawMessage]
	var keyring store.KV[json.RawMessage]
	type leaderKV struct {
		name string
		rev  int64
	}
	var leaders []leaderKV
	for _, kv := range resp.Kvs {
		key, val := string(kv.Key), kv.Value
		var err error
		switch {
		case strings.HasPrefix(key, nodesPrefix):
			var n NodeRecord
			if err = json.Unmarshal(val, &n); err == nil {
				s.Nodes = append(s.Nodes, n)
			}
		case strings.HasPrefix(key, podCIDRsPrefix):
			var cidr netip.Prefix
			if err = json.Unmarshal(val, &cidr); err == nil {
				if s.PodCIDRs == nil {
					s.PodCIDRs = map[string]netip.Prefix{}
				}
				s.PodCIDRs[strings.TrimPrefix(key, podCIDRsPrefix)] = cidr
			}
		case strings.HasPrefix(key, knownPrefix):
			var n NodeRecord
			if err = json.Unmarshal(val, &n); err == nil {
				s.Known = append(s.Known, n)
			}
		case strings.HasPrefix(key, masterPrefix+"/"):
			leaders = append(leaders, leaderKV{string(val), kv.CreateRevision})
		case key == appliedKey:
			err = json.Unmarshal(val, &s.Applied)
		case key == convergedKey:
			err = json.Unmarshal(val, &s.Converged)
		case strings.HasPrefix(key, seenPrefix):
			var c CommitRecord
			if err = json.Unmarshal(val, &c); err == nil {
				s.Commits = append(s.Commits, c)
			}
		case strings.HasPrefix(key, desiredPrefix):
			desired = append(desired, store.KV[json.RawMessage]{Key: key, Value: val})
		case key == keyringKey:
			keyring = store.KV[json.RawMessage]{Key: key, Value: val, ModRev: kv.ModRevision}
		case strings.HasPrefix(key, placementPrefix):
			var p Placement
			if err = json.Unmarshal(val, &p); err == nil {
				s.Placements = append(s.Placements, p)
			}
		case strings.HasPrefix(key, statusPrefix):
			var st PodStatusRecord
			if err = json.Unmarshal(val, &st); err == nil {
				s.Statuses[st.UID] = st
			}
		case strings.HasPrefix(key, servicesPrefix):
			var r reconcile.ServiceState
			if err = json.Unmarshal(val, &r); err == nil {
				s.Services[r.Namespace+"/"+r.Name] = r
			}
		case strings.HasPrefix(key, cordonPrefix):
			if s.Cordoned == nil {
				s.Cordoned = map[string]bool{}
			}
			s.Cordoned[strings.TrimPrefix(key, cordonPrefix)] = true
		case strings.HasPrefix(key, daemonSetsPrefix):
			var d reconcile.DaemonSetStatus
			if err = json.Unmarshal(val, &d); err == nil {
				s.DaemonSets[d.Namespace+"/"+d.Name] = d
			}
		case strings.HasPrefix(key, autoscalersPrefix):
			var h reconcile.HPAStatus
			if err = json.Unmarshal(val, &h); err == nil {
				s.Autoscalers[h.Namespace+"/"+h.Name] = h
			}
		case strings.HasPrefix(key, statefulSetsPrefix):
			var d reconcile.StatefulSetStatus
			if err = json.Unmarshal(val, &d); err == nil {
				s.StatefulSets[d.Namespace+"/"+d.Name] = d
			}
		case strings.HasPrefix(key, claimsPrefix):
			var c reconcile.ClaimState
			if err = json.Unmarshal(val, &c); err == nil {
				s.Claims[reconcile.ClaimKey(c.Namespace, c.Name)] = c
			}
		case strings.HasPrefix(key, cronJobsPrefix):
			var c reconcile.CronJobStatus
			if err = json.Unmarshal(val, &c); err == nil {
				s.CronJobs[c.Namespace+"/"+c.Name] = c
			}
		case strings.HasPrefix(key, jobsPrefix):
			var j reconcile.JobStatus
			if err = json.Unmarshal(val, &j); err == nil {
				s.Jobs[j.Namespace+"/"+j.Name] = j
			}
		case strings.HasPrefix(key, metricsPrefix):
			var m NodeMetrics
			if err = json.Unmarshal(val, &m); err == nil {
				s.Metrics[strings.TrimPrefix(key, metricsPrefix)] = m
			}
		case strings.HasPrefix(key, deploymentsPrefix):
			var d DeploymentRecord
			if err = json.Unmarshal(val, &d); err == nil {
				s.Deployments[deploymentKeyOf(d.Namespace, d.Name)] = d
			}
		}
		if err != nil {
			return nil, fmt.Errorf("stored %s is damaged: %w", key, err)
		}
	}
	if len(leaders) > 0 {
		slices.SortFunc(leaders, func(a, b leaderKV) int { return cmp.Compare(a.rev, b.rev) })
		s.Leader = leaders[0].name
	}
	slices.SortFunc(s.Commits, func(a, b CommitRecord) int { return a.SeenAt.Compare(b.SeenAt) })
	objs, err := b.objectsOf(s.Applied.SHA, desired, keyring)
	if err != nil {
		return nil, err
	}
	s.Objects = objs
	if b.Agent {
		s.agentView(b.Node)
	}
	return s, nil
}

// StoreLeader returns the node (or external etcd member) that leads the store, "" when it is
// not known: `shoal status` shows it, and not knowing it is no reason to fail.
func (b *Backend) StoreLeader(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	name, _ := b.Store.StoreLeader(ctx)
	return name
}

// objectsOf decodes the desired objects of the applied commit, once per commit (a rotation
// changes how its Secrets are stored, not what they hold), opening its Secrets with the keyring
// read with them. A Secret this backend cannot open is shown by its name alone.
func (b *Backend) objectsOf(sha string, desired []store.KV[json.RawMessage], keyring store.KV[json.RawMessage]) ([]manifests.Object, error) {
	if sha == "" {
		return nil, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objSHA == sha {
		return b.objects, nil
	}
	var mine []store.KV[json.RawMessage]
	encrypted := false
	for _, kv := range desired {
		if strings.HasPrefix(kv.Key, desiredPrefix+sha+"/") {
			mine = append(mine, kv)
			encrypted = encrypted || sealing.IsEnvelope(kv.Value)
		}
	}
	var kr *sealing.Keyring
	why := ErrNoCAKey
	complete := true // every Secret that could open did: the result is kept
	switch {
	case !encrypted:
	case b.Keys == nil || b.Keys.CAKey == nil:
	case keyring.Value == nil:
		why, complete = errors.New("no keyring is stored"), false
	default:
		if kr, why = b.keyrings.open(b.Keys.CAKey, keyring.Value, keyring.ModRev); why != nil {
			complete = false
		}
	}
	objs, err := decodeObjects(mine, kr, why, true)
	if err != nil {
		return nil, err
	}
	if b.Keys != nil && b.Keys.CAKey != nil {
		for _, o := range objs {
			if _, redacted := o.GetObjectMeta().Annotations[AnnotationEncrypted]; redacted && o.GetKind() == "Secret" {
				complete = false
			}
		}
	}
	if complete {
		b.objSHA, b.objects = sha, objs
	}
	return objs, nil
}

// Events returns the recent events, oldest first.
func (b *Backend) Events(ctx context.Context) ([]Event, error) {
	kvs, _, err := store.List[Event](ctx, b.Store, eventsPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kv.Value)
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// findPod returns the placement of a pod by namespace and name.
func (b *Backend) findPod(ctx context.Context, namespace, name string) (Placement, error) {
	kvs, _, err := store.List[Placement](ctx, b.Store, placementPrefix)
	if err != nil {
		return Placement{}, err
	}
	for _, kv := range kvs {
		pl := kv.Value
		if pl.Spec.Pod != nil && pl.Spec.Pod.Namespace == namespace && pl.Spec.Pod.Name == name {
			return pl, nil
		}
	}
	return Placement{}, fmt.Errorf("pod %s/%s: %w", namespace, name, runtime.ErrNotFound)
}

// PodNode returns the node a pod is placed on ("" while pending) and that node's cluster
// endpoint ("" if it serves none).
func (b *Backend) PodNode(ctx context.Context, namespace, name string) (node, endpoint string, err error) {
	pl, err := b.findPod(ctx, namespace, name)
	if err != nil || pl.Node == "" {
		return "", "", err
	}
	rec, _, _, err := store.Get[NodeRecord](ctx, b.Store, knownKey(pl.Node))
	if err != nil {
		return "", "", err
	}
	return pl.Node, rec.Endpoint, nil
}

// pod finds a pod by namespace and name, and checks it runs on this node.
func (b *Backend) pod(ctx context.Context, namespace, name string) (Placement, error) {
	if pl, ok, err := b.localPod(ctx, namespace, name); err != nil || ok {
		return pl, err
	}
	if b.Agent {
		return Placement{}, notHere(namespace, name)
	}
	pl, err := b.findPod(ctx, namespace, name)
	if err != nil {
		return Placement{}, err
	}
	if pl.Node != b.Node {
		where := "is not scheduled on any node yet"
		if pl.Node != "" {
			where = "runs on node " + pl.Node + ": its node cannot be reached from here; ask that node's daemon (shoal --socket or --server)"
		}
		return pl, fmt.Errorf("pod %s/%s %s", namespace, name, where)
	}
	return pl, nil
}

// Logs writes the log of a container of a pod that runs on this node.
func (b *Backend) Logs(ctx context.Context, namespace, name, container string, opts runtime.LogOptions, w io.Writer) error {
	pl, err := b.pod(ctx, namespace, name)
	if err != nil {
		return err
	}
	return b.Runtime.Logs(ctx, pl.Spec.UID, container, opts, w)
}

// Exec runs a command in a container of a pod that runs on this node.
func (b *Backend) Exec(ctx context.Context, namespace, name, container string, opts runtime.ExecOptions) (int, error) {
	pl, err := b.pod(ctx, namespace, name)
	if err != nil {
		return -1, err
	}
	return b.Runtime.Exec(ctx, pl.Spec.UID, container, opts)
}

// DeletePod asks the master to delete the pod namespace/name, as kubectl delete pod does: its
// controller replaces it (a standalone Pod of git is made again). A pod already being deleted is
// not an error.
func (b *Backend) DeletePod(ctx context.Context, namespace, name string) error {
	placed, _, err := store.List[Placement](ctx, b.Store, placementPrefix)
	if err != nil {
		return err
	}
	for _, kv := range placed {
		pl := kv.Value
		if pl.Spec.Pod == nil || pl.Spec.Pod.Namespace != namespace || pl.Spec.Pod.Name != name {
			continue
		}
		if pl.Terminating {
			return nil
		}
		return store.Put(ctx, b.Store, deletionKey(pl.Spec.UID), DeletionRecord{UID: pl.Spec.UID, Namespace: namespace, Name: name, Requested: time.Now()})
	}
	return fmt.Errorf("pod %s/%s: %w", namespace, name, runtime.ErrNotFound)
}

// Cordon marks a node unschedulable (and, with drain, moves its Deployment pods elsewhere), or
// with cordon false makes it schedulable again.
func (b *Backend) Cordon(ctx context.Context, node string, cordon, drain bool) error {
	if _, _, found, err := store.Get[NodeRecord](ctx, b.Store, nodeKey(node)); err != nil {
		return err
	} else if !found {
		return fmt.Errorf("node %q: %w", node, runtime.ErrNotFound)
	}
	if !cordon {
		return store.Delete(ctx, b.Store, cordonKey(node))
	}
	return store.Put(ctx, b.Store, cordonKey(node), CordonRecord{Drain: drain, Since: time.Now()})
}

// ErrNodeRunning is returned by RemoveNode for a node whose lease is alive.
var ErrNodeRunning = errors.New("the node is running")

// RemoveNode deletes a node for good: its store member (when it runs one), its store user, its
// record, pod CIDR and cordon. The master places the pods it had elsewhere at once, without the
// node-lost grace. A node that is still running is refused: stop its daemon first.
func (b *Backend) RemoveNode(ctx context.Context, node string) error {
	live, err := NodeRegistered(ctx, b.Store, node)
	if err != nil {
		return err
	}
	if live {
		return fmt.Errorf("node %q: %w: drain it (`shoal drain %s`), stop its daemon and `shoal node reset` it, then remove it",
			node, ErrNodeRunning, node)
	}
	_, _, known, err := store.Get[NodeRecord](ctx, b.Store, knownKey(node))
	if err != nil {
		return err
	}
	members, err := b.Store.Members(ctx)
	if err != nil {
		return err
	}
	member := false
	for _, m := range members {
		if m.Name != node {
			continue
		}
		if len(members) == 1 {
			return fmt.Errorf("node %q runs the only store member: it cannot be removed", node)
		}
		if err := b.Store.RemoveMember(ctx, m.ID); err != nil {
			return err
		}
		member = true
	}
	if !known && !member {
		return fmt.Errorf("node %q: %w", node, runtime.ErrNotFound)
	}
	// Its certificate no longer opens the embedded store (before its record goes, so that a
	// failed attempt can be made again); a node that joins again gets a new user. An external
	// store's users are its operator's.
	if b.Keys != nil {
		if err := b.Store.DeleteUser(ctx, node); err != nil {
			return fmt.Errorf("remove node %q: %w", node, err)
		}
	}
	// The pods placed on the node are the master's to move: it treats a node that is neither
	// registered nor known as gone long ago.
	ops := []clientv3.Op{
		clientv3.OpDelete(knownKey(node)),
		clientv3.OpDelete(PodCIDRKey(node)),
		clientv3.OpDelete(cordonKey(node)),
		clientv3.OpDelete(reclaimPrefix+node+"/", clientv3.WithPrefix()),
	}
	if _, err := b.Store.Etcd().Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("remove node %q from the store: %w", node, err)
	}
	return nil
}
