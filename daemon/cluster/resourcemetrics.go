package cluster

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Resource metrics: each node measures the CPU and memory of its pods from their cgroups, as the
// kubelet does for metrics-server, and keeps its last sample in the store for the master's
// autoscalers and `shoal top`. There is no metrics-server: the node turns its cumulative CPU
// times into rates itself.

// metricsPrefix holds each node's last usage sample (NodeMetrics), written by the node on its lease.
const metricsPrefix = prefix + "metrics/"

func metricsKey(node string) string { return metricsPrefix + node }

// DefaultMetricsInterval is how often a node measures its pods: metrics-server's default
// resolution.
const DefaultMetricsInterval = 15 * time.Second

// NodeMetrics is a node's last usage sample: what its pods used over the window that ended at
// Timestamp.
type NodeMetrics struct {
	Node      string        `json:"node"`
	Timestamp time.Time     `json:"timestamp"`
	Window    time.Duration `json:"window"`
	MilliCPU  int64         `json:"milliCPU"` // the node's pods together
	Memory    int64         `json:"memory"`   // working set bytes, the node's pods together
	Pods      []PodMetrics  `json:"pods"`
}

// PodMetrics is what one pod used: each of its running containers. As metrics-server, a node
// leaves out a pod one of whose containers has no CPU rate yet (its first sample, as after a
// restart), rather than report the pod smaller than it is.
type PodMetrics struct {
	UID        string             `json:"uid"`
	Namespace  string             `json:"namespace"`
	Name       string             `json:"name"`
	Containers []ContainerMetrics `json:"containers"`
}

// ContainerMetrics is what one container used: its CPU in thousandths of a CPU, averaged over
// the window, and its memory working set in bytes at the end of it.
type ContainerMetrics struct {
	Name     string `json:"name"`
	MilliCPU int64  `json:"milliCPU"`
	Memory   int64  `json:"memory"`
}

// usageSampler turns the runtime's cumulative CPU times into rates, from one sample to the next.
type usageSampler struct {
	last time.Time                           // of the previous sample; zero before the first
	prev map[string]runtime.ContainerMetrics // the previous sample, by container ID
}

// next takes a new sample, measured at now, and returns the node's record: the rates since the
// previous sample. The first sample has no window: ok is false.
func (u *usageSampler) next(node string, now time.Time, pods []runtime.PodMetrics) (rec NodeMetrics, ok bool) {
	prev, last := u.prev, u.last
	u.prev, u.last = make(map[string]runtime.ContainerMetrics, len(prev)), now
	for _, p := range pods {
		for _, c := range p.Containers {
			u.prev[c.ID] = c
		}
	}
	if last.IsZero() {
		return NodeMetrics{}, false
	}
	rec = NodeMetrics{Node: node, Timestamp: now, Window: now.Sub(last), Pods: []PodMetrics{}}
	for _, p := range pods {
		pm := PodMetrics{UID: p.UID, Namespace: p.Namespace, Name: p.Name, Containers: make([]ContainerMetrics, 0, len(p.Containers))}
		complete := len(p.Containers) > 0
		for _, c := range p.Containers {
			milli, ok := milliCPU(prev[c.ID], c)
			if !ok {
				complete = false
				break
			}
			pm.Containers = append(pm.Containers, ContainerMetrics{Name: c.Name, MilliCPU: milli, Memory: c.MemoryWorkingSet})
		}
		if !complete {
			continue
		}
		for _, c := range pm.Containers {
			rec.MilliCPU += c.MilliCPU
			rec.Memory += c.Memory
		}
		rec.Pods = append(rec.Pods, pm)
	}
	return rec, true
}

// milliCPU is a container's CPU usage between two samples of the same run of it, in thousandths
// of a CPU, rounded. There is none without an earlier sample of that run (prev is then the zero
// value), nor when the time or the counter went backwards.
func milliCPU(prev, cur runtime.ContainerMetrics) (int64, bool) {
	dt := cur.Time.Sub(prev.Time)
	if prev.ID == "" || prev.ID != cur.ID || dt <= 0 || cur.CPUUsageNanos < prev.CPUUsageNanos {
		return 0, false
	}
	return int64(math.Round(float64(cur.CPUUsageNanos-prev.CPUUsageNanos) * 1000 / float64(dt))), true
}

// reportMetrics measures the node's pods now and every interval after, and writes the node's
// NodeMetrics on its lease, so that the record goes with the node, until ctx ends. Failures are
// logged at debug level: the next tick tries again.
func (a *Agent) reportMetrics(ctx context.Context, reg *store.Registration, every time.Duration) {
	var u usageSampler
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		a.sampleMetrics(ctx, reg, &u, every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleMetrics takes one sample and writes the record it makes.
func (a *Agent) sampleMetrics(ctx context.Context, reg *store.Registration, u *usageSampler, every time.Duration) {
	pods, err := a.cfg.Runtime.PodMetrics(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		a.log.Debug("measure pods", "err", err)
		if pods == nil {
			return // nothing measured: the next sample's window spans this one
		}
	}
	rec, ok := u.next(a.cfg.Node, time.Now(), pods)
	if !ok {
		return
	}
	lease := reg.Lease()
	if lease == 0 {
		a.log.Debug("write pod metrics: the node's lease is being renewed")
		return
	}
	wctx, cancel := context.WithTimeout(ctx, every)
	defer cancel()
	if err := store.Put(wctx, a.cfg.Store, metricsKey(a.cfg.Node), rec, clientv3.WithLease(lease)); err != nil && ctx.Err() == nil {
		a.log.Debug("write pod metrics", "err", err)
	}
}

// NodeUsage is one node in `shoal top nodes`.
type NodeUsage struct {
	Name string `json:"name"`
	// Available is false for a node that has no sample in the store yet (its daemon started
	// less than an interval ago, or it is not ready): the usage fields are then zero.
	Available bool          `json:"available"`
	Timestamp time.Time     `json:"timestamp,omitzero"`
	Window    time.Duration `json:"window,omitempty"`
	MilliCPU  int64         `json:"milliCPU"`
	Memory    int64         `json:"memory"`
	// CPUPercent and MemoryPercent are of the node's allocatable resources, as kubectl top
	// node shows them (0 when the node reports none).
	CPUPercent    int64     `json:"cpuPercent"`
	MemoryPercent int64     `json:"memoryPercent"`
	Allocatable   Resources `json:"allocatable"`
}

// NodeUsageList is what `shoal top nodes` shows.
type NodeUsageList struct {
	Items []NodeUsage `json:"items"`
}

// TopNodes returns the usage of every node whose labels sel matches, by name: the registered
// nodes, then those that are not ready (which have no sample).
func (s *Snapshot) TopNodes(sel manifests.Selector) NodeUsageList {
	l := NodeUsageList{Items: []NodeUsage{}}
	for _, n := range append(append([]NodeRecord{}, s.Nodes...), s.notReady()...) {
		if !sel.Matches(n.Labels) {
			continue
		}
		u := NodeUsage{Name: n.Name, Allocatable: n.Allocatable}
		if m, ok := s.Metrics[n.Name]; ok {
			u.Available, u.Timestamp, u.Window, u.MilliCPU, u.Memory = true, m.Timestamp, m.Window, m.MilliCPU, m.Memory
			u.CPUPercent, u.MemoryPercent = percent(m.MilliCPU, n.Allocatable.MilliCPU), percent(m.Memory, n.Allocatable.Memory)
		}
		l.Items = append(l.Items, u)
	}
	slices.SortStableFunc(l.Items, func(a, b NodeUsage) int {
		if a.Available != b.Available {
			if a.Available {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return l
}

// percent is used as a whole percentage of allocatable, truncated as kubectl does.
func percent(used, allocatable int64) int64 {
	if allocatable <= 0 {
		return 0
	}
	return int64(float64(used) / float64(allocatable) * 100)
}

// PodUsage is one pod in `shoal top pods`.
type PodUsage struct {
	Namespace  string             `json:"namespace"`
	Name       string             `json:"name"`
	Node       string             `json:"node"`
	Timestamp  time.Time          `json:"timestamp"`
	Window     time.Duration      `json:"window"`
	MilliCPU   int64              `json:"milliCPU"`
	Memory     int64              `json:"memory"`
	Containers []ContainerMetrics `json:"containers"`
}

// PodUsageList is what `shoal top pods` shows: the measured pods of the selection, and the
// running pods of it that have no sample yet.
type PodUsageList struct {
	Items []PodUsage `json:"items"`
	// Unmeasured names (namespace/name) the running pods of the selection that no sample has
	// yet: a pod's first CPU rate needs two samples of it, an interval apart.
	Unmeasured []string `json:"unmeasured,omitempty"`
}

// TopPods returns the usage of the pods f selects (and of the one named name, if not ""), by
// namespace and name, from their nodes' last samples.
func (s *Snapshot) TopPods(f Filter, name string) PodUsageList {
	type sample struct {
		node *NodeMetrics
		pod  *PodMetrics
	}
	byUID := map[string]sample{}
	for node := range s.Metrics {
		m := s.Metrics[node]
		for i := range m.Pods {
			byUID[m.Pods[i].UID] = sample{&m, &m.Pods[i]}
		}
	}
	l := PodUsageList{Items: []PodUsage{}}
	for _, p := range s.Pods() {
		if !f.match(&p.Pod.ObjectMeta) || (name != "" && p.Pod.Name != name) {
			continue
		}
		sm, ok := byUID[p.UID]
		if !ok || sm.node.Node != p.Node {
			if p.Node != "" && p.Pod.Status.Phase == manifests.PodRunning {
				l.Unmeasured = append(l.Unmeasured, p.Pod.Namespace+"/"+p.Pod.Name)
			}
			continue
		}
		u := PodUsage{Namespace: p.Pod.Namespace, Name: p.Pod.Name, Node: p.Node, Timestamp: sm.node.Timestamp, Window: sm.node.Window,
			Containers: sm.pod.Containers}
		for _, c := range sm.pod.Containers {
			u.MilliCPU += c.MilliCPU
			u.Memory += c.Memory
		}
		l.Items = append(l.Items, u)
	}
	return l
}
