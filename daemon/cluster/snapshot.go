package cluster

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

// Snapshot is the cluster's state read from the store at one revision. The API answers every
// read from a Snapshot, so its views are pure functions of it.
type Snapshot struct {
	Rev          int64
	Now          time.Time
	Leader       string
	Nodes        []NodeRecord // registered: their lease is alive
	Known        []NodeRecord // every node that registered and was not removed
	Applied      AppliedRecord
	Converged    string
	Commits      []CommitRecord // oldest seen first
	Objects      []manifests.Object
	Placements   []Placement
	Statuses     map[string]PodStatusRecord // by pod UID
	Deployments  map[string]DeploymentRecord
	Jobs         map[string]reconcile.JobStatus         // by namespace/name
	CronJobs     map[string]reconcile.CronJobStatus     // by namespace/name
	DaemonSets   map[string]reconcile.DaemonSetStatus   // by namespace/name
	StatefulSets map[string]reconcile.StatefulSetStatus // by namespace/name
	Autoscalers  map[string]reconcile.HPAStatus         // by namespace/name
	Claims       map[string]reconcile.ClaimState        // PersistentVolumeClaims, by namespace/name
	Services     map[string]reconcile.ServiceState      // by namespace/name
	Cordoned     map[string]bool                        // nodes marked unschedulable by an operator
	PodCIDRs     map[string]netip.Prefix                // by node
	Metrics      map[string]NodeMetrics                 // each node's last usage sample, by node
	// Scope says what part of the cluster the snapshot holds when it is not the whole: an
	// agent reads only its own (see AgentPermissions).
	Scope string
}

// DeploymentRecord is the master's view of a Deployment's rollout.
type DeploymentRecord struct {
	Namespace string                     `json:"namespace"`
	Name      string                     `json:"name"`
	Status    manifests.DeploymentStatus `json:"status"`
	Commit    string                     `json:"commit"`
	Complete  bool                       `json:"complete"`
}

func deploymentKeyOf(ns, name string) string { return ns + "/" + name }

// Pod is a pod as the API shows it: the placed spec, where it runs and what its node reports.
type Pod struct {
	Pod         manifests.Pod
	UID         string
	Created     time.Time
	Node        string
	Owner       string
	Commit      string
	Terminating bool
}

// Pods returns the cluster's pods, sorted by namespace and name.
func (s *Snapshot) Pods() []Pod {
	out := make([]Pod, 0, len(s.Placements))
	for _, pl := range s.Placements {
		p := Pod{UID: pl.Spec.UID, Created: pl.Created, Node: pl.Node, Owner: pl.Owner, Commit: pl.Commit, Terminating: pl.Terminating}
		if pl.Spec.Pod != nil {
			p.Pod = *pl.Spec.Pod
		}
		p.Pod.APIVersion, p.Pod.Kind = "v1", "Pod"
		if st, ok := s.Statuses[pl.Spec.UID]; ok {
			p.Pod.Status = st.Status
		} else {
			p.Pod.Status = manifests.PodStatus{Phase: manifests.PodPending, Reason: "NotReported",
				Message: "the node has not reported this pod yet"}
		}
		if pl.Node == "" && p.Pod.Status.Reason == "NotReported" {
			p.Pod.Status.Reason, p.Pod.Status.Message = "Unschedulable", pl.Reason
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.Pod.Namespace, b.Pod.Namespace), cmp.Compare(a.Pod.Name, b.Pod.Name))
	})
	return out
}

// PodReady reports whether a pod's Ready condition is true.
func PodReady(st manifests.PodStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == manifests.PodReady {
			return c.Status == manifests.ConditionTrue
		}
	}
	return false
}

// Object returns the desired object of a kind, namespace and name, or nil.
func (s *Snapshot) Object(kind, namespace, name string) manifests.Object {
	for _, o := range s.Objects {
		m := o.GetObjectMeta()
		if o.GetKind() == kind && m.Namespace == namespace && m.Name == name {
			return o
		}
	}
	return nil
}

// NodeStatus is one line of `shoal status`.
type NodeStatus struct {
	Name          string    `json:"name"`
	Ready         bool      `json:"ready"`
	Master        bool      `json:"master"`
	Unschedulable bool      `json:"unschedulable,omitempty"`
	Converged     string    `json:"converged,omitempty"`
	Store         string    `json:"store,omitempty"`
	PodsRunning   int       `json:"podsRunning"`
	PodsDesired   int       `json:"podsDesired"`
	Heartbeat     time.Time `json:"heartbeat"`
}

// DeploymentSummary is one Deployment in `shoal status`.
type DeploymentSummary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Desired   int32  `json:"desired"`
	Ready     int32  `json:"ready"`
	Updated   int32  `json:"updated"`
	Available int32  `json:"available"`
	Complete  bool   `json:"complete"`
}

// DaemonSetSummary is one DaemonSet in `shoal status`.
type DaemonSetSummary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Desired   int32  `json:"desired"`
	Ready     int32  `json:"ready"`
	Updated   int32  `json:"updated"`
	Available int32  `json:"available"`
	Complete  bool   `json:"complete"`
}

// StatefulSetSummary is one StatefulSet in `shoal status`.
type StatefulSetSummary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Replicas  int32  `json:"replicas"`
	Ready     int32  `json:"ready"`
	Updated   int32  `json:"updated"`
	Available int32  `json:"available"`
	Complete  bool   `json:"complete"`
}

// AutoscalerSummary is one HorizontalPodAutoscaler in `shoal status`.
type AutoscalerSummary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Target    string `json:"target"` // Kind/name
	Min       int32  `json:"min"`
	Max       int32  `json:"max"`
	Current   int32  `json:"current"`
	Desired   int32  `json:"desired"`
	// Metrics are the current values against the targets, as kubectl get hpa shows them
	// ("cpu: 40%/50%").
	Metrics string `json:"metrics"`
	// Problem is why it does not scale, from its conditions; "" when it does.
	Problem string `json:"problem,omitempty"`
}

// JobSummary is one Job of git in `shoal status`.
type JobSummary struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Completions int32  `json:"completions"` // 0 for a work queue
	Succeeded   int32  `json:"succeeded"`
	Failed      int32  `json:"failed"`
	Active      int32  `json:"active"`
	// State is Complete, Failed, Suspended or Running.
	State string `json:"state"`
}

// Status is what `shoal status` shows.
type Status struct {
	Master       string               `json:"master,omitempty"`
	StoreLeader  string               `json:"storeLeader,omitempty"` // set by the API, not from a Snapshot
	Applied      *CommitRecord        `json:"applied,omitempty"`
	Converged    string               `json:"converged,omitempty"`
	LastRejected *CommitRecord        `json:"lastRejected,omitempty"`
	Nodes        []NodeStatus         `json:"nodes"`
	Deployments  []DeploymentSummary  `json:"deployments"`
	DaemonSets   []DaemonSetSummary   `json:"daemonSets,omitempty"`
	StatefulSets []StatefulSetSummary `json:"statefulSets,omitempty"`
	Autoscalers  []AutoscalerSummary  `json:"autoscalers,omitempty"`
	Jobs         []JobSummary         `json:"jobs,omitempty"`
	Pending      int                  `json:"pending"`
	// Scope says what part of the cluster the status shows when it is not the whole (on an
	// agent), and where to see the whole.
	Scope string `json:"scope,omitempty"`
}

// nodeConverged is the commit whose pods n runs as placed: the converged commit when all of its
// pods are Ready, "" when some are not. The master marks a commit converged once every placed pod
// of it is Ready, so a node all of whose pods are Ready runs that commit's pods.
func (s *Snapshot) nodeConverged(n NodeRecord) string {
	if n.PodsRunning != n.PodsDesired {
		return ""
	}
	return s.Converged
}

// Status summarises the cluster.
func (s *Snapshot) Status() Status {
	st := Status{Master: s.Leader, Converged: s.Converged, Nodes: []NodeStatus{}, Deployments: []DeploymentSummary{}, Scope: s.Scope}
	for i := range s.Commits {
		c := s.Commits[i]
		if c.SHA == s.Applied.SHA && c.Result == ResultApplied {
			st.Applied = &c
		}
		if c.Result == ResultRejected && (st.LastRejected == nil || !c.SeenAt.Before(st.LastRejected.SeenAt)) {
			st.LastRejected = &c
		}
	}
	// A rejection older than the applied commit is history, not news.
	if st.LastRejected != nil && st.Applied != nil && st.LastRejected.SeenAt.Before(st.Applied.SeenAt) {
		st.LastRejected = nil
	}
	for _, n := range s.Nodes {
		st.Nodes = append(st.Nodes, NodeStatus{Name: n.Name, Ready: true, Master: n.Name == s.Leader,
			Unschedulable: n.Unschedulable || s.Cordoned[n.Name], Converged: s.nodeConverged(n), Store: n.Store, PodsRunning: n.PodsRunning,
			PodsDesired: n.PodsDesired, Heartbeat: n.Heartbeat})
	}
	for _, n := range s.notReady() {
		st.Nodes = append(st.Nodes, NodeStatus{Name: n.Name, Master: n.Name == s.Leader, Unschedulable: n.Unschedulable || s.Cordoned[n.Name],
			Store: n.Store, Heartbeat: n.Heartbeat})
	}
	slices.SortFunc(st.Nodes, func(a, b NodeStatus) int { return cmp.Compare(a.Name, b.Name) })
	for _, o := range s.Objects {
		switch o := o.(type) {
		case *manifests.DaemonSet:
			sum := DaemonSetSummary{Namespace: o.Namespace, Name: o.Name}
			if rec, ok := s.DaemonSets[o.Namespace+"/"+o.Name]; ok {
				sum.Desired, sum.Ready, sum.Updated, sum.Available = rec.DesiredNumberScheduled, rec.NumberReady, rec.UpdatedNumberScheduled, rec.NumberAvailable
				sum.Complete = rec.Complete
			}
			st.DaemonSets = append(st.DaemonSets, sum)
		case *manifests.HorizontalPodAutoscaler:
			st.Autoscalers = append(st.Autoscalers, s.autoscalerSummary(o))
		case *manifests.StatefulSet:
			sum := StatefulSetSummary{Namespace: o.Namespace, Name: o.Name, Replicas: *o.Spec.Replicas}
			if rec, ok := s.StatefulSets[o.Namespace+"/"+o.Name]; ok {
				sum.Ready, sum.Updated, sum.Available, sum.Complete = rec.ReadyReplicas, rec.UpdatedReplicas, rec.AvailableReplicas, rec.Complete
			}
			st.StatefulSets = append(st.StatefulSets, sum)
		case *manifests.Job:
			sum := JobSummary{Namespace: o.Namespace, Name: o.Name, State: "Running"}
			if o.Spec.Completions != nil {
				sum.Completions = *o.Spec.Completions
			}
			if rec, ok := s.Jobs[o.Namespace+"/"+o.Name]; ok {
				sum.Succeeded, sum.Failed, sum.Active = rec.Succeeded, rec.Failed, rec.Active
				switch {
				case rec.Condition(manifests.JobComplete):
					sum.State = "Complete"
				case rec.Condition(manifests.JobFailed):
					sum.State = "Failed"
				case rec.Condition(manifests.JobSuspended):
					sum.State = "Suspended"
				}
			}
			st.Jobs = append(st.Jobs, sum)
		}
		d, ok := o.(*manifests.Deployment)
		if !ok {
			continue
		}
		sum := DeploymentSummary{Namespace: d.Namespace, Name: d.Name}
		if d.Spec.Replicas != nil {
			sum.Desired = *d.Spec.Replicas
		}
		if rec, ok := s.Deployments[deploymentKeyOf(d.Namespace, d.Name)]; ok {
			sum.Ready, sum.Updated, sum.Available = rec.Status.ReadyReplicas, rec.Status.UpdatedReplicas, rec.Status.AvailableReplicas
			sum.Complete = rec.Complete
		}
		st.Deployments = append(st.Deployments, sum)
	}
	for _, p := range s.Placements {
		if p.Node == "" {
			st.Pending++
		}
	}
	return st
}

// List is a kubectl-style list: {"apiVersion":"v1","kind":"List","items":[...]}.
type List struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Items      []any  `json:"items"`
}

// Filter selects objects for `shoal get`.
type Filter struct {
	Namespace string // "" with All: every namespace
	All       bool
	Selector  manifests.Selector
}

func (f Filter) match(meta *manifests.ObjectMeta) bool {
	if !f.All && meta.Namespace != f.Namespace && meta.Namespace != "" {
		return false
	}
	return f.Selector.Matches(meta.Labels)
}

// withField returns v as a JSON object with extra fields set at path (e.g. spec.nodeName).
func withField(v any, set map[string]map[string]any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for section, fields := range set {
		sec, _ := m[section].(map[string]any)
		if sec == nil {
			sec = map[string]any{}
			m[section] = sec
		}
		for k, val := range fields {
			old, _ := sec[k].(map[string]any)
			add, ok := val.(map[string]any)
			if old != nil && ok {
				for kk, vv := range add {
					old[kk] = vv
				}
				continue
			}
			sec[k] = val
		}
	}
	return m, nil
}

// PodList returns the pods as a kubectl-style List; spec.nodeName says where each runs.
func (s *Snapshot) PodList(f Filter) (List, error) {
	l := List{APIVersion: "v1", Kind: "List", Items: []any{}}
	for _, p := range s.Pods() {
		if !f.match(&p.Pod.ObjectMeta) {
			continue
		}
		annotations := map[string]any{"shoal.dev/commit": p.Commit}
		if p.Owner != "" {
			annotations["shoal.dev/owner"] = p.Owner
		}
		meta := map[string]any{"uid": p.UID, "creationTimestamp": p.Created.UTC().Format(time.RFC3339), "annotations": annotations}
		if p.Terminating {
			meta["deletionTimestamp"] = s.Now.UTC().Format(time.RFC3339)
		}
		extra := map[string]map[string]any{"metadata": meta, "spec": {}}
		if p.Node != "" {
			extra["spec"]["nodeName"] = p.Node
		}
		item, err := withField(p.Pod, extra)
		if err != nil {
			return l, err
		}
		l.Items = append(l.Items, item)
	}
	return l, nil
}

// ObjectList returns the desired objects of a kind with their status, as a kubectl-style List.
func (s *Snapshot) ObjectList(kind string, f Filter) (List, error) {
	l := List{APIVersion: "v1", Kind: "List", Items: []any{}}
	for _, o := range s.Objects {
		if o.GetKind() != kind || !f.match(o.GetObjectMeta()) {
			continue
		}
		switch obj := o.DeepCopyObject().(type) {
		case *manifests.Deployment:
			if rec, ok := s.Deployments[deploymentKeyOf(obj.Namespace, obj.Name)]; ok {
				obj.Status = rec.Status
			}
			l.Items = append(l.Items, obj)
		case *manifests.Job:
			if rec, ok := s.Jobs[obj.Namespace+"/"+obj.Name]; ok {
				obj.Status = rec.JobStatus
			}
			l.Items = append(l.Items, obj)
		case *manifests.DaemonSet:
			if rec, ok := s.DaemonSets[obj.Namespace+"/"+obj.Name]; ok {
				obj.Status = rec.DaemonSetStatus
			}
			l.Items = append(l.Items, obj)
		case *manifests.StatefulSet:
			if rec, ok := s.StatefulSets[obj.Namespace+"/"+obj.Name]; ok {
				obj.Status = rec.StatefulSetStatus
			}
			l.Items = append(l.Items, obj)
		case *manifests.HorizontalPodAutoscaler:
			if rec, ok := s.Autoscalers[obj.Namespace+"/"+obj.Name]; ok {
				obj.Status = rec.HorizontalPodAutoscalerStatus
			}
			l.Items = append(l.Items, obj)
		case *manifests.CronJob:
			if rec, ok := s.CronJobs[obj.Namespace+"/"+obj.Name]; ok {
				obj.Status = rec.CronJobStatus
			}
			l.Items = append(l.Items, obj)
		case *manifests.PersistentVolumeClaim:
			if rec, ok := s.Claims[reconcile.ClaimKey(obj.Namespace, obj.Name)]; ok {
				withClaim(obj, rec)
			}
			l.Items = append(l.Items, obj)
		case *manifests.Service:
			s.withService(obj)
			l.Items = append(l.Items, obj)
		default:
			l.Items = append(l.Items, obj)
		}
	}
	if kind == "PersistentVolumeClaim" {
		// Claims removed from git that pods still use are listed until they are released.
		for _, key := range slices.Sorted(maps.Keys(s.Claims)) {
			c := s.Claims[key]
			if !c.Deleting {
				continue
			}
			obj := &manifests.PersistentVolumeClaim{TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
				ObjectMeta: manifests.ObjectMeta{Namespace: c.Namespace, Name: c.Name}}
			if !f.match(&obj.ObjectMeta) {
				continue
			}
			obj.Spec.AccessModes = c.AccessModes
			class := manifests.LocalPathStorageClass
			obj.Spec.StorageClassName = &class
			withClaim(obj, c)
			l.Items = append(l.Items, obj)
		}
	}
	if kind == "Job" {
		// The Jobs that CronJobs made are listed with those of git.
		for _, key := range slices.Sorted(maps.Keys(s.CronJobs)) {
			for _, run := range s.CronJobs[key].Runs {
				j := run.Job.DeepCopyObject().(*manifests.Job)
				if !f.match(&j.ObjectMeta) {
					continue
				}
				if rec, ok := s.Jobs[j.Namespace+"/"+j.Name]; ok {
					j.Status = rec.JobStatus
				}
				l.Items = append(l.Items, j)
			}
		}
	}
	return l, nil
}

// Annotations Shoal puts on a claim it shows: the node its volume is on (as Kubernetes' volume
// scheduler annotates a WaitForFirstConsumer claim), the volume's name, and that the claim is
// being deleted.
const (
	AnnotationSelectedNode = "volume.kubernetes.io/selected-node"
	AnnotationVolume       = "shoal.dev/volume"
	AnnotationDeleting     = "shoal.dev/deleting"
)

// withClaim fills in what the cluster has of a claim: its phase, capacity and access modes once
// bound, its node and volume, and whether it is being deleted.
func withClaim(obj *manifests.PersistentVolumeClaim, c reconcile.ClaimState) {
	obj.Status = manifests.PersistentVolumeClaimStatus{Phase: c.Phase()}
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	if c.Node != "" {
		obj.Status.AccessModes = c.AccessModes
		obj.Status.Capacity = manifests.ResourceList{manifests.ResourceStorage: manifests.NewQuantity(c.Capacity)}
		obj.Annotations[AnnotationSelectedNode] = c.Node
		obj.Annotations[AnnotationVolume] = c.VolumeName()
	}
	if c.Deleting {
		obj.Annotations[AnnotationDeleting] = "true"
	}
}

// withService fills in what the master decided for a Service: its virtual IP, its node ports,
// a LoadBalancer's ingress addresses (status.loadBalancer.ingress), and its endpoints as the
// annotation shoal.dev/endpoints ("ip:port,...", the first port's target).
func (s *Snapshot) withService(svc *manifests.Service) {
	rec, ok := s.Services[svc.Namespace+"/"+svc.Name]
	if !ok {
		return
	}
	if svc.Spec.ClusterIP == "" && rec.ClusterIP.IsValid() {
		svc.Spec.ClusterIP = rec.ClusterIP.String()
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	for i := range svc.Spec.Ports {
		for _, rp := range rec.Ports {
			if rp.Name == svc.Spec.Ports[i].Name && svc.Spec.Ports[i].NodePort == 0 {
				svc.Spec.Ports[i].NodePort = rp.NodePort
			}
		}
	}
	svc.Status.LoadBalancer.Ingress = nil
	for _, ip := range rec.Ingress {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, manifests.LoadBalancerIngress{IP: ip.String()})
	}
	var eps []string
	for _, e := range rec.Endpoints {
		addr := e.IP.String()
		if len(rec.Ports) > 0 {
			if p, ok := e.Ports[rec.Ports[0].Name]; ok {
				addr = fmt.Sprintf("%s:%d", e.IP, p)
			}
		}
		eps = append(eps, addr)
	}
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations["shoal.dev/endpoints"] = strings.Join(eps, ",")
}

// notReady returns the known nodes that are not registered.
func (s *Snapshot) notReady() []NodeRecord {
	live := map[string]bool{}
	for _, n := range s.Nodes {
		live[n.Name] = true
	}
	var out []NodeRecord
	for _, n := range s.Known {
		if !live[n.Name] {
			out = append(out, n)
		}
	}
	return out
}

// NodeList returns the nodes as kubectl-style v1 Node objects; a node whose lease expired has
// the Ready condition Unknown, as Kubernetes shows a node that stopped posting its status.
func (s *Snapshot) NodeList(f Filter) (List, error) {
	l := List{APIVersion: "v1", Kind: "List", Items: []any{}}
	gone := s.notReady()
	for i, n := range append(append([]NodeRecord{}, s.Nodes...), gone...) {
		ready := "True"
		if i >= len(s.Nodes) {
			ready = "Unknown"
		}
		if !f.Selector.Matches(n.Labels) {
			continue
		}
		role := "node"
		if n.Name == s.Leader {
			role = "master"
		}
		addrs := []map[string]string{}
		for _, a := range n.Addresses {
			addrs = append(addrs, map[string]string{"type": "InternalIP", "address": a})
		}
		l.Items = append(l.Items, map[string]any{
			"apiVersion": "v1", "kind": "Node",
			"metadata": map[string]any{"name": n.Name, "labels": n.Labels, "creationTimestamp": n.StartedAt.UTC().Format(time.RFC3339),
				"annotations": map[string]string{"shoal.dev/role": role, "shoal.dev/converged-commit": s.nodeConverged(n)}},
			"spec": nodeSpec(n.Unschedulable || s.Cordoned[n.Name], s.PodCIDRs[n.Name], n.Taints),
			"status": map[string]any{
				"conditions":  []map[string]any{{"type": "Ready", "status": ready, "lastHeartbeatTime": n.Heartbeat.UTC().Format(time.RFC3339)}},
				"addresses":   addrs,
				"capacity":    resourceMap(n.Capacity),
				"allocatable": resourceMap(n.Allocatable),
				"nodeInfo":    map[string]string{"kubeletVersion": n.Version, "containerRuntimeVersion": "shoal://libcontainer"},
			},
		})
	}
	return l, nil
}

// nodeSpec is a Node's spec: unschedulable, its pod CIDR once the master gave it one, and its
// taints (with node.kubernetes.io/unschedulable on a cordoned node, as Kubernetes shows it).
func nodeSpec(unschedulable bool, cidr netip.Prefix, taints []NodeTaint) map[string]any {
	spec := map[string]any{"unschedulable": unschedulable}
	if cidr.IsValid() {
		spec["podCIDR"], spec["podCIDRs"] = cidr.String(), []string{cidr.String()}
	}
	if unschedulable {
		taints = append([]NodeTaint{{Taint: manifests.Taint{Key: reconcile.TaintUnschedulable, Effect: manifests.TaintEffectNoSchedule}}}, taints...)
	}
	if len(taints) > 0 {
		spec["taints"] = taints
	}
	return spec
}

func resourceMap(r Resources) map[string]string {
	m := map[string]string{"cpu": fmt.Sprintf("%dm", r.MilliCPU), "memory": fmt.Sprintf("%dKi", r.Memory/1024)}
	if r.EphemeralStorage > 0 {
		m["ephemeral-storage"] = fmt.Sprintf("%dKi", r.EphemeralStorage/1024)
	}
	return m
}

// autoscalerSummary is h in `shoal status` and `shoal get hpa`: its bounds, the replicas it set
// and its metrics against their targets.
func (s *Snapshot) autoscalerSummary(h *manifests.HorizontalPodAutoscaler) AutoscalerSummary {
	sum := AutoscalerSummary{Namespace: h.Namespace, Name: h.Name, Target: h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name,
		Max: h.Spec.MaxReplicas, Min: 1}
	if h.Spec.MinReplicas != nil {
		sum.Min = *h.Spec.MinReplicas
	}
	rec, ok := s.Autoscalers[h.Namespace+"/"+h.Name]
	if ok {
		sum.Current, sum.Desired = rec.CurrentReplicas, rec.DesiredReplicas
		for _, c := range rec.Conditions {
			if c.Status == manifests.ConditionFalse && (c.Type == "AbleToScale" || c.Type == "ScalingActive") {
				sum.Problem = c.Reason + ": " + c.Message
				break
			}
		}
	}
	sum.Metrics = h.MetricsText(rec.CurrentMetrics)
	return sum
}
