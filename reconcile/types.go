package reconcile

import (
	"net/netip"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// DefaultNodeLostGrace is how long a node may stay not ready before its
// Deployment pods are replaced elsewhere, when State.NodeLostGrace is zero.
const DefaultNodeLostGrace = 10 * time.Second

// Resources is an amount of CPU (in millicores), memory and ephemeral
// storage (in bytes).
type Resources struct {
	MilliCPU int64
	Memory   int64
	// EphemeralStorage is local storage: the pods' writable layers, logs
	// and emptyDir volumes. A node that reports none has no limit on it.
	EphemeralStorage int64
}

// Taint is one of a node's taints, with when the node got it.
type Taint struct {
	manifests.Taint
	// TimeAdded is when the node first had the taint, zero when unknown. A
	// NoExecute taint's tolerationSeconds count from it, or from the pod's
	// creation when that is later.
	TimeAdded time.Time
}

// Well-known taints that Shoal puts on nodes of itself, as Kubernetes'
// node lifecycle controller does: a pod that tolerates TaintUnschedulable
// may be placed on a cordoned node (not on a draining one).
const (
	TaintUnschedulable = "node.kubernetes.io/unschedulable"
	TaintNotReady      = "node.kubernetes.io/not-ready"
)

// LabelHostname is the node label that holds the node's name, the topology
// key of per-node affinity and spreading.
const LabelHostname = "kubernetes.io/hostname"

// Node is a registered node as the master sees it.
type Node struct {
	Name string
	// Ready is false while the node does not renew its lease or reports
	// itself unhealthy.
	Ready bool
	// Unschedulable marks a cordoned node: its pods stay, new pods do not go
	// there.
	Unschedulable bool
	// Draining marks a cordoned node whose Deployment pods move elsewhere:
	// no new pod goes there, whatever it tolerates.
	Draining bool
	// Labels are the node's labels; kubernetes.io/hostname is the node's
	// name when the node does not set it.
	Labels map[string]string
	// Taints keep pods that do not tolerate them off the node (NoSchedule,
	// PreferNoSchedule) and evict them (NoExecute).
	Taints []Taint
	// Allocatable is what pods may request on the node in total.
	Allocatable Resources
	// NotReadySince is when the node stopped being ready; zero while it is
	// ready.
	NotReadySince time.Time
	// LoadBalancerAddr is the address the node opens LoadBalancer Services'
	// ports on (its first address, when it serves node ports); invalid when
	// it opens none.
	LoadBalancerAddr netip.Addr
	// ReservedPorts are the TCP ports the node's daemon listens on at
	// LoadBalancerAddr: the node opens no LoadBalancer port among them.
	ReservedPorts []int32
}

// Pod is a pod the cluster has, placed on a node or still pending.
type Pod struct {
	UID       string
	Namespace string
	Name      string
	// Owner is "Deployment/<namespace>/<name>" for a Deployment's pod and ""
	// for a standalone Pod object.
	Owner string
	// TemplateHash is the pod-template-hash of the Deployment template the
	// pod was made from; for a standalone pod, the hash of its Pod object
	// (labels, annotations and spec), which tells when git changed it.
	TemplateHash string
	// Spec is the full pod: defaults applied and labels set (including
	// pod-template-hash for a Deployment's pod).
	Spec *manifests.Pod
	// Node is the node the pod is bound to, or "" while it is pending.
	Node string
	// Commit is the commit that created the pod.
	Commit  string
	Created time.Time

	// Observed state, reported by the node running the pod. While the pod is
	// pending, Reason and Message hold the scheduler's last explanation
	// (Reason "Unschedulable").
	Phase      manifests.PodPhase
	Ready      bool
	ReadySince time.Time
	// IP is the pod's address, "" while it has none.
	IP       string
	Restarts int32
	Reason   string
	Message  string
	// Terminating is set once deletion was requested; the pod stays until
	// its node has stopped it. DeleteReason is the DeletePod reason.
	Terminating  bool
	DeleteReason string
	// Status is the pod's status as its node last reported it, nil while
	// it has reported none. It is shared: do not modify it.
	Status *manifests.PodStatus
}

// State is everything Reconcile looks at: the desired objects of the applied
// commit and the observed pods and nodes.
type State struct {
	// Objects are the applied commit's objects, with defaults applied (as
	// manifests.LoadDir returns them). Kinds other than Deployment and Pod
	// are ignored.
	Objects []manifests.Object
	// Commit is the applied commit; new pods record it.
	Commit string
	Pods   []Pod
	// Nodes are the registered nodes: those whose registration (a lease)
	// is alive.
	Nodes []Node
	// Known names the nodes that joined the cluster and were not removed
	// since (`shoal node remove`), registered or not. A node that pods are
	// placed on but that is not registered is lost: since now when it is
	// known (its pods move after NodeLostGrace), since the zero time when
	// it is not (it was removed: its pods move at once). A nil Known
	// counts every node that is not registered as removed.
	Known map[string]bool
	// Lost is the previous plan's Plan.Lost, which the master carries from
	// one pass to the next: the nodes found lost, and since when.
	Lost map[string]time.Time
	// Now is the time the plan is made for; Reconcile reads no clock.
	Now time.Time
	// NodeLostGrace is how long a node may be not ready before its
	// Deployment pods are replaced; zero means DefaultNodeLostGrace.
	NodeLostGrace time.Duration
	// ClusterCIDR is the range the nodes' pod CIDRs (/24 each) come from;
	// when it is not valid, the plan allocates none.
	ClusterCIDR netip.Prefix
	// PodCIDRs are the pod CIDRs the nodes have, by node name. A node keeps
	// its CIDR until it is removed from the cluster.
	PodCIDRs map[string]netip.Prefix
	// DeploymentConditions are the conditions last recorded for each
	// Deployment ("namespace/name"), whose times a condition keeps while it
	// does not change.
	DeploymentConditions map[string][]manifests.DeploymentCondition
	// Jobs are the statuses the previous plans gave the Jobs
	// ("namespace/name"), from which the counts of their ended pods go on.
	Jobs map[string]JobStatus
	// CronJobs are the statuses the previous plans gave the CronJobs
	// ("namespace/name"), with the Jobs they made.
	CronJobs map[string]CronJobStatus
	// Claims are the PersistentVolumeClaims the cluster has, as the
	// previous plan's Plan.Claims ("namespace/name").
	Claims map[string]ClaimState
	// StatefulSets are the statuses the previous plans gave the
	// StatefulSets ("namespace/name"), with the revision their pods below
	// a partition keep.
	StatefulSets map[string]StatefulSetStatus
	// Autoscalers are the statuses the previous plans gave the
	// HorizontalPodAutoscalers ("namespace/name"): the replicas they set,
	// their recommendations and scale events. PodMetrics is the pods'
	// usage as their nodes last measured it, by pod UID.
	Autoscalers map[string]HPAStatus
	PodMetrics  map[string]PodUsage
	// DeleteRequests are the pods (by UID) an operator asked to delete
	// (shoal delete pod): they are deleted as kubectl delete pod deletes
	// them, and their controllers replace them.
	DeleteRequests map[string]bool
	// AutoscalerSync is how often an autoscaler computes its replicas;
	// zero means HPASyncPeriod.
	AutoscalerSync time.Duration
	// Services, when ServiceCIDR is valid, are planned too (Plan.Services):
	// from the virtual IPs already allocated (by address, to
	// "namespace/name"), the node ports Services had ("namespace/name/port
	// name") and the LoadBalancer Services that were served; see Services.
	ServiceCIDR         netip.Prefix
	ServiceIPs          map[netip.Addr]string
	NodePorts           map[string]int32
	ServedLoadBalancers map[string]bool
}

// IDSource supplies the identifiers of new pods. Reconcile calls it in a
// deterministic order, so a deterministic source gives a deterministic plan.
type IDSource interface {
	// NewUID returns a unique pod UID.
	NewUID() string
	// Suffix returns 5 characters from SuffixAlphabet for a pod name; a
	// suffix that makes a name already in use is asked for again.
	Suffix() string
}

// SuffixAlphabet is the alphabet of pod name suffixes and template hashes:
// the consonants and digits Kubernetes uses so that no word is spelled.
const SuffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// Action is one change the plan asks the master to make: CreatePod,
// DeletePod, BindPod or SetPodStatus.
type Action interface{ isAction() }

// CreatePod asks to store a new pod. Pod.Node is the node the scheduler
// chose in the same plan, or "" when no node fits (the plan then lists the
// pod in Pending). ConfigMaps and Secrets (by name, of the pod's namespace)
// are the desired objects the pod refers to, which its node runs it with;
// Pod.Spec has its ServiceAccount's imagePullSecrets when it lists none.
type CreatePod struct {
	Pod        Pod
	ConfigMaps map[string]*manifests.ConfigMap
	Secrets    map[string]*manifests.Secret
}

// Reasons of DeletePod.
const (
	DeleteScaleDown   = "ScaleDown"   // replicas lowered, or an extra pod
	DeleteRollout     = "Rollout"     // an old revision's pod replaced by a rolling update
	DeleteRecreate    = "Recreate"    // an old revision's pod removed by the Recreate strategy
	DeletePruned      = "Pruned"      // its Deployment or Pod object was removed from git
	DeleteSpecChanged = "SpecChanged" // its standalone Pod object changed in git
	DeleteNodeLost    = "NodeLost"    // its node is lost; a replacement is scheduled elsewhere
	DeleteFailed      = "PodFailed"   // a Deployment pod ended (Failed or Succeeded); it is replaced
	// DeleteTaintEviction: its node has a NoExecute taint the pod does not
	// tolerate, or no longer tolerates after its tolerationSeconds.
	DeleteTaintEviction = "TaintManagerEviction"
	// DeleteDrained: a Deployment's pod on a draining node; a replacement
	// is scheduled elsewhere (standalone pods stay, as kubectl drain leaves
	// unmanaged pods without --force).
	DeleteDrained = "Drained"
	// DeleteJobSuspended: its Job is suspended.
	DeleteJobSuspended = "JobSuspended"
	// DeleteJobFinished: its Job has failed or met its completions.
	DeleteJobFinished = "JobFinished"
	// DeleteJobExpired: its Job finished ttlSecondsAfterFinished ago.
	DeleteJobExpired = "TTLExpired"
	// DeleteRequested: an operator asked for it (shoal delete pod).
	DeleteRequested = "Requested"
	// DeleteJobDeleted: its CronJob deleted its Job (history limits,
	// concurrencyPolicy Replace).
	DeleteJobDeleted = "JobDeleted"
)

// DeletePod asks to delete a pod: the pod is marked Terminating and its node
// stops it. With Force the pod is removed from the store at once, because no
// node will confirm it (the pod is not bound, or its node is lost).
type DeletePod struct {
	UID       string
	Namespace string
	Name      string
	Node      string
	Reason    string
	Force     bool
}

// BindPod asks to place an existing pending pod on a node.
type BindPod struct {
	UID  string
	Node string
}

// SetPodStatus asks to record a pod's phase on behalf of its node, for
// standalone pods whose node is lost (phase Unknown, reason NodeLost).
type SetPodStatus struct {
	UID     string
	Phase   manifests.PodPhase
	Reason  string
	Message string
}

func (CreatePod) isAction()    {}
func (DeletePod) isAction()    {}
func (BindPod) isAction()      {}
func (SetPodStatus) isAction() {}

// PendingPod is a pod that no node can take now.
type PendingPod struct {
	UID       string
	Namespace string
	Name      string
	// Reason explains it in the scheduler's words, such as "0/3 nodes are
	// available: 1 node(s) didn't match Pod's node affinity/selector, 2
	// Insufficient cpu." The master records it as the pod's Message with Reason
	// "Unschedulable".
	Reason string
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event is a short human-readable note about what the plan does.
type Event struct {
	// Object is "Deployment/<namespace>/<name>" or "Pod/<namespace>/<name>".
	Object string
	// Type is EventNormal or EventWarning.
	Type    string
	Reason  string
	Message string
}

// What a NodeChange says of a node.
const (
	// NodeNotRegistered: pods are placed on a known node that is not
	// registered; it is lost from now on.
	NodeNotRegistered = "NotRegistered"
	// NodeRemoved: pods are placed on a node that is neither registered
	// nor known; it is lost since the zero time, and its pods move at once.
	NodeRemoved = "Removed"
	// NodeBack: a lost node is registered again.
	NodeBack = "Back"
	// NodeForgotten: no pod is placed on a lost node any more; it is no
	// longer tracked.
	NodeForgotten = "Forgotten"
)

// NodeChange is a change in the nodes the plan counts as lost.
type NodeChange struct {
	Node string
	// What is NodeNotRegistered, NodeRemoved, NodeBack or NodeForgotten.
	What string
	// Since is when the node was lost, as Plan.Lost has it (for NodeBack
	// and NodeForgotten, as State.Lost had it).
	Since time.Time
}

// DeploymentStatus is a Deployment's status as it will be once the plan is
// applied. The embedded manifests.DeploymentStatus is what the API shows.
// A condition's lastTransitionTime is State.Now when its status changed
// (else the recorded one), its lastUpdateTime State.Now when its status,
// reason or message changed.
type DeploymentStatus struct {
	Namespace string
	Name      string
	// TemplateHash is the current revision's pod-template-hash.
	TemplateHash string
	// ObservedCommit is the commit the status was computed for.
	ObservedCommit string
	// Complete is true when the rollout is done: every replica is of the
	// current revision and available, and no old pod is left.
	Complete bool
	manifests.DeploymentStatus
}

// Plan is the outcome of one Reconcile.
type Plan struct {
	// Actions are the changes to apply, in order.
	Actions []Action
	// Deployments holds one status per Deployment, sorted by namespace and
	// name.
	Deployments []DeploymentStatus
	// Jobs holds one status per Job, sorted by namespace and name.
	Jobs []JobStatus
	// DaemonSets holds one status per DaemonSet, sorted by namespace and
	// name.
	DaemonSets []DaemonSetStatus
	// CronJobs holds one status per CronJob, sorted by namespace and
	// name; the Jobs it lists are planned in Jobs.
	CronJobs []CronJobStatus
	// StatefulSets holds one status per StatefulSet, sorted by namespace
	// and name.
	StatefulSets []StatefulSetStatus
	// Autoscalers holds one status per HorizontalPodAutoscaler, in
	// namespace and name order; its DesiredReplicas are the replicas its
	// target was planned with (0 when it could not scale it).
	Autoscalers []HPAStatus
	// Claims holds every PersistentVolumeClaim the cluster has once the
	// plan is applied, sorted by namespace and name: those of git, and
	// those removed from it that pods still use (Deleting).
	Claims []ClaimState
	// ReleasedClaims are the claims removed from git that no pod uses any
	// more: the master forgets them and has their volumes deleted (reclaim
	// policy Delete) or kept (Retain).
	ReleasedClaims []ReleasedClaim
	// Pending lists the pods that stay unscheduled.
	Pending []PendingPod
	Events  []Event
	// Services are the Services' virtual IPs, node ports and endpoints (the
	// ready pods they select, as observed), when State.ServiceCIDR is valid.
	Services ServicePlan
	// PodCIDRs are the pod CIDRs given in this plan, by node name: every
	// ready node without one gets the lowest free /24 of the cluster CIDR.
	PodCIDRs map[string]netip.Prefix
	// NoPodCIDR lists the ready nodes left without a pod CIDR because the
	// cluster CIDR is full (or smaller than a /24).
	NoPodCIDR []string
	// Lost holds the nodes that pods are placed on but that are not
	// registered, and since when they are lost (the zero time for a node
	// that was removed); pass it back as State.Lost on the next pass. A
	// node's pods count as not ready while it is lost, and its Deployment
	// pods move to other nodes NodeLostGrace after the time recorded.
	Lost map[string]time.Time
	// NodeChanges are the changes from State.Lost to Lost, in order of
	// node name, for the master's log.
	NodeChanges []NodeChange
	// RequeueAfter, when positive, is when the plan may change by time
	// alone (a pod reaching minReadySeconds, a node reaching the lost
	// grace); the master reconciles again by then at the latest.
	RequeueAfter time.Duration
}
