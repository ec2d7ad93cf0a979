package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// What a node may do in the embedded store, which checks the certificate of every request (the
// store's user is the node's name). A server is an admin: it may become master, which writes
// everything. An agent, which is never master, reaches what the non-master side of a node reads
// and writes (the agent, its host ports, volumes and metrics, the network plane, the members'
// list) and nothing else: no desired state (the Secrets of its pods reach it sealed to it in its
// placements), no other node's placements, status or metrics, no tokens, joins, master keys,
// keyring, events or cordons. Every key of the schema is in agentTable or in serverOnlyKeys, which
// TestKeySchemaPermissions checks against the source, so that a new key cannot be forgotten.

// scope is the part of a key prefix an agent's permission covers.
type scope int

const (
	none    scope = iota
	exact         // the key itself
	ownKey        // prefix + <node>
	ownTree       // every key under prefix + <node> + "/"
	all           // every key under the prefix
)

// keyAccess is what an agent may read and write of one key or prefix of the schema.
type keyAccess struct {
	key         string
	read, write scope
	why         string
}

// agentTable is every key an agent may reach. Writing implies reading: etcd grants read, or read
// and write.
var agentTable = []keyAccess{
	{nodesPrefix, all, ownKey, "its registration, on its lease; the network plane follows every node's"},
	{knownPrefix, ownKey, ownKey, "its record without a lease, with the certificate its Secrets are sealed to"},
	{metricsPrefix, ownKey, ownKey, "its pods' usage, on its lease"},
	{statusPrefix, ownTree, ownTree, "its pods' status, and the stop of a terminating pod (Stopped)"},
	// A node may not write placements, its own included: a placement it wrote for itself would
	// count as a replica of any Deployment and serve any Service's selector. It reports the pods
	// it stopped instead (PodStatusRecord.Stopped), and the master deletes their placements.
	{placementPrefix, ownTree, none, "the pods placed on it"},
	// etcd has no delete-only permission: the node deletes the record of a volume it deleted, so
	// it may write its own records too, which ask nothing of anyone but itself.
	{reclaimPrefix, ownTree, ownTree, "the volumes of released claims it deletes, then their records"},
	{servicesPrefix, all, none, "the Services its network plane and DNS serve"},
	{podCIDRsPrefix, all, none, "the pod CIDRs it routes to, its own included"},
	{appliedKey, exact, none, "the applied commit, for `shoal status`"},
	{convergedKey, exact, none, "the converged commit, for `shoal status`"},
	{join.AuthKey, exact, none, "whether the store checks certificates; a node refused it was removed"},
}

// serverOnlyKeys are the keys and prefixes of the schema an agent may not reach at all.
var serverOnlyKeys = []string{
	masterPrefix,       // the election: agents never campaign
	seenPrefix,         // the commits the master saw
	desiredPrefix,      // the desired state, Secrets included
	keyringKey,         // the keyring of the Secrets
	eventsPrefix,       // written by the master only
	deploymentsPrefix,  // controllers' state, the master's
	jobsPrefix,         //
	cronJobsPrefix,     //
	daemonSetsPrefix,   //
	statefulSetsPrefix, //
	autoscalersPrefix,  //
	claimsPrefix,       //
	deletionsPrefix,    // `shoal delete pod`, through a server's API
	cordonPrefix,       // `shoal cordon|drain`, through a server's API
	join.TokenPrefix,   // join tokens
	join.JoinsPrefix,   // store members added for joins
}

// AgentPermissions are the store permissions of agent node's user (store.Client.SetUser).
func AgentPermissions(node string) []store.Permission {
	var out []store.Permission
	add := func(key string, s scope, write bool) {
		switch s {
		case exact:
			out = append(out, store.Permission{Key: key, Write: write})
		case ownKey:
			out = append(out, store.Permission{Key: key + node, Write: write})
		case ownTree:
			out = append(out, store.Permission{Key: key + node + "/", Prefix: true, Write: write})
		case all:
			out = append(out, store.Permission{Key: key, Prefix: true, Write: write})
		}
	}
	for _, a := range agentTable {
		if a.read != a.write || a.write == none {
			add(a.key, a.read, false)
		}
		add(a.key, a.write, true)
	}
	return out
}

// NodeNames lists the nodes registered now (live) and those the cluster knows (registered once
// and not removed).
func NodeNames(ctx context.Context, st *store.Client) (live, known []string, err error) {
	for _, p := range []struct {
		prefix string
		out    *[]string
	}{{nodesPrefix, &live}, {knownPrefix, &known}} {
		resp, err := st.Etcd().Get(ctx, p.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return nil, nil, fmt.Errorf("list the nodes: %w", err)
		}
		for _, kv := range resp.Kvs {
			*p.out = append(*p.out, strings.TrimPrefix(string(kv.Key), p.prefix))
		}
	}
	return live, known, nil
}

// NodeKnown reports whether the cluster still knows a node of that name: it registered and was
// not removed.
func NodeKnown(ctx context.Context, st *store.Client, name string) (bool, error) {
	_, _, ok, err := store.Get[NodeRecord](ctx, st, knownKey(name))
	return ok, err
}

// ErrNeedsServer is what an agent answers for what its store user may not read or write: the
// whole cluster is seen, and changed, from a server node.
var ErrNeedsServer = errors.New("this node is an agent: it sees only its own node, its pods, the applied commit and the " +
	"Services; run the command on a server node")

// agentRanges are the ranges an agent's snapshot reads: what AgentPermissions lets it read.
func agentRanges(node string) []clientv3.Op {
	var ops []clientv3.Op
	for _, a := range agentTable {
		switch a.read {
		case exact:
			ops = append(ops, clientv3.OpGet(a.key))
		case ownKey:
			ops = append(ops, clientv3.OpGet(a.key+node))
		case ownTree:
			ops = append(ops, clientv3.OpGet(a.key+node+"/", clientv3.WithPrefix()))
		case all:
			ops = append(ops, clientv3.OpGet(a.key, clientv3.WithPrefix()))
		}
	}
	return ops
}

// readState reads what the backend's node may read of the store, at one revision: everything
// on a server, on an agent the ranges of AgentPermissions (one transaction of reads).
func (b *Backend) readState(ctx context.Context) (*clientv3.GetResponse, error) {
	if !b.Agent {
		return b.Store.Etcd().Get(ctx, prefix, clientv3.WithPrefix())
	}
	resp, err := b.Store.Etcd().Txn(ctx).Then(agentRanges(b.Node)...).Commit()
	if err != nil {
		return nil, err
	}
	var kvs []*mvccpb.KeyValue
	for _, r := range resp.Responses {
		kvs = append(kvs, r.GetResponseRange().Kvs...)
	}
	return &clientv3.GetResponse{Header: resp.Header, Kvs: kvs}, nil
}

// agentView completes the snapshot of an agent: it says what it holds, and shows the Services
// the node serves as Service objects (an agent reads no desired state).
func (s *Snapshot) agentView(node string) {
	s.Scope = "node " + node + " is an agent: this is its own node, its pods, the applied commit and the Services; " +
		"the whole cluster is seen from a server node"
	if s.Applied.SHA != "" {
		// Its record, without the commit's message, which an agent does not read.
		s.Commits = []CommitRecord{{SHA: s.Applied.SHA, Result: ResultApplied, SeenAt: s.Applied.AppliedAt, Objects: s.Applied.Objects}}
	}
	for _, key := range slices.Sorted(maps.Keys(s.Services)) {
		rec := s.Services[key]
		svc := &manifests.Service{TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: manifests.ObjectMeta{Namespace: rec.Namespace, Name: rec.Name},
			Spec:       manifests.ServiceSpec{Type: rec.Type, SessionAffinity: rec.SessionAffinity}}
		if rec.Headless {
			svc.Spec.ClusterIP = "None"
		}
		for _, p := range rec.Ports {
			svc.Spec.Ports = append(svc.Spec.Ports, manifests.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port,
				TargetPort: p.TargetPort, NodePort: p.NodePort})
		}
		s.Objects = append(s.Objects, svc)
	}
}

// localPod finds a pod by namespace and name among the placements of this node.
func (b *Backend) localPod(ctx context.Context, namespace, name string) (Placement, bool, error) {
	kvs, _, err := store.List[Placement](ctx, b.Store, placementPrefix+b.Node+"/")
	if err != nil {
		return Placement{}, false, err
	}
	for _, kv := range kvs {
		if p := kv.Value.Spec.Pod; p != nil && p.Namespace == namespace && p.Name == name {
			return kv.Value, true, nil
		}
	}
	return Placement{}, false, nil
}

// PodPlacedHere reports whether the pod namespace/name is placed on this node: the cluster
// endpoint serves other nodes the logs and exec of those pods only.
func (b *Backend) PodPlacedHere(ctx context.Context, namespace, name string) (bool, error) {
	_, ok, err := b.localPod(ctx, namespace, name)
	return ok, err
}

// notHere is the error for a pod that is not placed on an agent, which cannot see where it is.
func notHere(namespace, name string) error {
	return fmt.Errorf("pod %s/%s is not on this node: %w", namespace, name, ErrNeedsServer)
}

// keySet is a set of store keys, safe for concurrent use.
type keySet struct {
	mu   sync.Mutex
	keys map[string]bool
}

// set adds key to the set (on) or removes it.
func (s *keySet) set(key string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.keys, key)
		return
	}
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.keys[key] = true
}

// list returns the keys, sorted.
func (s *keySet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.keys))
	for k := range s.keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// stoppedOps deletes the placements and status of the terminating pods that their nodes
// stopped (a node may not write placements, so it cannot delete them).
func (m *Master) stoppedOps() []clientv3.Op {
	var ops []clientv3.Op
	for _, key := range m.view.stopped.list() {
		node, uid, ok := strings.Cut(strings.TrimPrefix(key, statusPrefix), "/")
		if !ok {
			continue
		}
		if pl, ok := m.view.placement(uid); ok && (!pl.Terminating || pl.Node != node) {
			continue // placed again meanwhile: not the pod that was stopped
		}
		ops = append(ops, clientv3.OpDelete(placementKey(node, uid)), clientv3.OpDelete(key))
	}
	return ops
}
