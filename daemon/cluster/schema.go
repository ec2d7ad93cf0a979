package cluster

import (
	"context"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
	"github.com/shoal-dev/shoal/runtime"
)

// Keys of the shared store; docs/store.md documents them.
const (
	prefix            = "/shoal/"
	nodesPrefix       = prefix + "nodes/"
	masterPrefix      = prefix + "master"
	appliedKey        = prefix + "commits/applied"
	seenPrefix        = prefix + "commits/seen/"
	desiredPrefix     = prefix + "desired/"
	placementPrefix   = prefix + "placements/"
	statusPrefix      = prefix + "status/"
	eventsPrefix      = prefix + "events/"
	convergedKey      = prefix + "commits/converged"
	deploymentsPrefix = prefix + "deployments/"
)

func deploymentKey(ns, name string) string { return deploymentsPrefix + ns + "/" + name }

// jobsPrefix holds each Job's status (reconcile.JobStatus), which also carries the counts of
// its ended pods from one pass to the next.
const jobsPrefix = prefix + "jobs/"

func jobKey(ns, name string) string { return jobsPrefix + ns + "/" + name }

// daemonSetsPrefix holds each DaemonSet's rollout status (reconcile.DaemonSetStatus).
const daemonSetsPrefix = prefix + "daemonsets/"

func daemonSetKey(ns, name string) string { return daemonSetsPrefix + ns + "/" + name }

// deletionsPrefix holds the pods an operator asked to delete (shoal delete pod), by UID
// (DeletionRecord): written through the API, acted on and removed by the master, which alone
// writes placements.
const deletionsPrefix = prefix + "deletions/"

func deletionKey(uid string) string { return deletionsPrefix + uid }

// DeletionRecord is a request to delete a pod.
type DeletionRecord struct {
	UID       string    `json:"uid"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Requested time.Time `json:"requested"`
}

// autoscalersPrefix holds each HorizontalPodAutoscaler's status (reconcile.HPAStatus): the
// replicas it set, its recommendations and scale events.
const autoscalersPrefix = prefix + "autoscalers/"

func autoscalerKey(ns, name string) string { return autoscalersPrefix + ns + "/" + name }

// statefulSetsPrefix holds each StatefulSet's status (reconcile.StatefulSetStatus), with the
// template of the revision its pods below a partition keep.
const statefulSetsPrefix = prefix + "statefulsets/"

func statefulSetKey(ns, name string) string { return statefulSetsPrefix + ns + "/" + name }

// cronJobsPrefix holds each CronJob's status (reconcile.CronJobStatus) with the Jobs it made.
const cronJobsPrefix = prefix + "cronjobs/"

func cronJobKey(ns, name string) string { return cronJobsPrefix + ns + "/" + name }

// claimsPrefix holds each PersistentVolumeClaim the cluster has (reconcile.ClaimState), with
// the node its volume is on.
const claimsPrefix = prefix + "claims/"

func claimKey(ns, name string) string { return claimsPrefix + ns + "/" + name }

// reclaimPrefix holds, per node, the volumes of released claims that the node deletes
// (ReclaimRecord): /shoal/reclaim/<node>/<claim uid>. The node deletes the record once the
// volume is gone.
const reclaimPrefix = prefix + "reclaim/"

func reclaimKey(node, uid string) string { return reclaimPrefix + node + "/" + uid }

// ReclaimRecord asks a node to delete the volume of a released claim.
type ReclaimRecord struct {
	UID       string    `json:"uid"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Released  time.Time `json:"released"`
}

const (
	servicesPrefix = prefix + "services/"
	podCIDRsPrefix = prefix + "podcidrs/"
)

// PodCIDRKey is where the master records a node's pod CIDR.
func PodCIDRKey(node string) string { return podCIDRsPrefix + node }

const cordonPrefix = prefix + "cordon/"

func cordonKey(node string) string { return cordonPrefix + node }

// CordonRecord is an operator's maintenance mark on a node: no new pods (cordon), and with Drain
// its Deployment pods move to other nodes.
type CordonRecord struct {
	Drain bool      `json:"drain,omitempty"`
	Since time.Time `json:"since"`
}

// Prefixes the network plane of a node follows.
const (
	ServicesPrefix = servicesPrefix
	PodCIDRsPrefix = podCIDRsPrefix
	NodesPrefix    = nodesPrefix
)

func serviceKey(ns, name string) string { return servicesPrefix + ns + "/" + name }

func nodeKey(node string) string { return nodesPrefix + node }

// knownPrefix holds, without a lease, the record of every node that ever registered, so that a
// node whose lease expired still shows as NotReady until `shoal node remove` deletes it.
const knownPrefix = prefix + "known/"

// keyringKey holds the cluster's keyring, which encrypts the Secrets of the desired state,
// sealed under a key derived from the cluster CA's (package sealing): only the nodes that hold
// the CA key open it. The first master creates it; `shoal secrets rotate-key` changes it.
const keyringKey = prefix + "secrets/keyring"

func knownKey(node string) string { return knownPrefix + node }
func seenKey(sha string) string   { return seenPrefix + sha }
func desiredKey(sha string, k manifests.ObjectKey) string {
	return desiredPrefix + sha + "/" + k.Kind + "/" + k.Namespace + "/" + k.Name
}
func placementKey(node, uid string) string { return placementPrefix + node + "/" + uid }
func statusKey(node, uid string) string    { return statusPrefix + node + "/" + uid }

// NodeRecord is a node's registration, kept on its lease: it disappears when the node stops
// renewing it.
type NodeRecord struct {
	Name        string            `json:"name"`
	Addresses   []string          `json:"addresses,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Capacity    Resources         `json:"capacity"`
	Allocatable Resources         `json:"allocatable"`
	Version     string            `json:"version"`
	// Endpoint is the node's cluster endpoint (https://ADDR:PORT), where other nodes forward
	// the logs and exec of its pods; "" when it serves none.
	Endpoint string `json:"endpoint,omitempty"`
	// Store is "member" for a node that runs a member of the embedded store, "client" for one
	// that uses the members, "external" for a node on an external etcd.
	Store string `json:"store,omitempty"`
	// PodsRunning counts the placed pods that are Ready, or ended for good (restartPolicy
	// OnFailure or Never): the node runs them as placed.
	PodsRunning   int  `json:"podsRunning"`
	PodsDesired   int  `json:"podsDesired"`
	Unschedulable bool `json:"unschedulable,omitempty"`
	// Heartbeat is when the node last wrote the record: on every change, else every 10 s (every
	// second on a node with a store member). Liveness is the record's lease.
	Heartbeat time.Time `json:"heartbeat"`
	StartedAt time.Time `json:"startedAt"`

	// Taints are the node's taints (`shoal daemon --node-taint`).
	Taints []NodeTaint `json:"taints,omitempty"`

	// NodePorts is set when the node serves NodePort and LoadBalancer Services on its first
	// address (`--node-interface`): the master lists that address as an ingress of every
	// LoadBalancer Service.
	NodePorts bool `json:"nodePorts,omitempty"`
	// ReservedPorts are the TCP ports the daemon listens on at that address; the node opens no
	// LoadBalancer port among them, and is no ingress of a Service with such a port.
	ReservedPorts []int32 `json:"reservedPorts,omitempty"`

	// Certificate is the node's certificate (PEM), whose key the master seals the node's pods'
	// Secrets to once it has checked that the cluster CA signed it for this node. The node
	// publishes it in its known record (/shoal/known/<node>), written once per start, and not in
	// the record on its lease, which its heartbeats rewrite.
	Certificate string `json:"certificate,omitempty"`
}

// NodeTaint is one of a node's taints, with the time the node first had it: a NoExecute
// taint's tolerationSeconds count from it. As Kubernetes, Shoal records the time only for
// NoExecute taints.
type NodeTaint struct {
	manifests.Taint
	TimeAdded time.Time `json:"timeAdded,omitzero"`
}

// ReconcileTaints converts a node's taints for the scheduler.
func ReconcileTaints(ts []NodeTaint) []reconcile.Taint {
	if len(ts) == 0 {
		return nil
	}
	out := make([]reconcile.Taint, len(ts))
	for i, t := range ts {
		out[i] = reconcile.Taint{Taint: t.Taint, TimeAdded: t.TimeAdded}
	}
	return out
}

// Resources are CPU in millicores, memory and ephemeral storage in bytes. A node that reports
// no ephemeral storage (as nodes before it was counted) has no limit on it.
type Resources struct {
	MilliCPU         int64 `json:"milliCPU"`
	Memory           int64 `json:"memory"`
	EphemeralStorage int64 `json:"ephemeralStorage,omitempty"`
}

// CommitRecord is a commit the master has seen: applied, or rejected with the reasons.
type CommitRecord struct {
	SHA     string    `json:"sha"`
	Author  string    `json:"author,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time,omitempty"`
	SeenAt  time.Time `json:"seenAt"`
	// Result is "applied" or "rejected".
	Result  string   `json:"result"`
	Reasons []string `json:"reasons,omitempty"`
	// Warnings of an applied commit: what it holds that has no effect in Shoal (such as RBAC
	// objects), each as "file:line: warning: message".
	Warnings []string `json:"warnings,omitempty"`
	Objects  int      `json:"objects,omitempty"`
	// ConvergedAt is when every pod of the commit was first Ready on its node.
	ConvergedAt time.Time `json:"convergedAt,omitempty"`
}

// Commit results.
const (
	ResultApplied  = "applied"
	ResultRejected = "rejected"
)

// AppliedRecord points at the commit whose objects are the desired state.
type AppliedRecord struct {
	SHA       string    `json:"sha"`
	AppliedAt time.Time `json:"appliedAt"`
	Objects   int       `json:"objects"`
}

// Placement is a pod the master has assigned to a node.
type Placement struct {
	Spec         runtime.PodSpec `json:"spec"`
	Node         string          `json:"node"`
	Owner        string          `json:"owner,omitempty"`
	TemplateHash string          `json:"templateHash,omitempty"`
	Commit       string          `json:"commit"`
	Created      time.Time       `json:"created"`
	// Terminating is set when the master wants the pod gone; the node stops it and reports it
	// stopped (PodStatusRecord.Stopped), and the master deletes the placement.
	Terminating bool   `json:"terminating,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// SealedSecrets are the Secrets the pod refers to (what Spec.Secrets holds for the runtime),
	// sealed to the key of its node's certificate (HPKE, with the placement's key as info), and
	// SealedTo that key's fingerprint: only the node opens them, and Spec.Secrets is stored
	// empty. A cluster on an external store has no CA: there Spec.Secrets is stored as is.
	SealedSecrets []byte `json:"sealedSecrets,omitempty"`
	SealedTo      string `json:"sealedTo,omitempty"`
}

// PodStatusRecord is what a node reports about one of its pods.
type PodStatusRecord struct {
	UID        string              `json:"uid"`
	Namespace  string              `json:"namespace"`
	Name       string              `json:"name"`
	Node       string              `json:"node"`
	Status     manifests.PodStatus `json:"status"`
	ReadySince time.Time           `json:"readySince,omitempty"`
	Reported   time.Time           `json:"reported"`
	// Stopped is set once the node stopped a terminating pod: the master then deletes its
	// placement and this record (a node may not write placements; see AgentPermissions).
	Stopped bool `json:"stopped,omitempty"`
}

// Event is something worth telling the user, like kubectl get events.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // Normal or Warning
	Reason  string    `json:"reason"`
	Object  string    `json:"object"`
	Message string    `json:"message"`
	Node    string    `json:"node,omitempty"`
}

// NodeRegistered reports whether a node of that name holds a live registration.
func NodeRegistered(ctx context.Context, st *store.Client, name string) (bool, error) {
	_, _, ok, err := store.Get[NodeRecord](ctx, st, nodeKey(name))
	if err != nil {
		return false, err
	}
	return ok, nil
}
