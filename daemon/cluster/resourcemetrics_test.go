package cluster

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

func TestMilliCPU(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sample := func(id string, cpu uint64, at time.Duration) runtime.ContainerMetrics {
		return runtime.ContainerMetrics{Name: "app", ID: id, CPUUsageNanos: cpu, Time: t0.Add(at)}
	}
	tests := []struct {
		name      string
		prev, cur runtime.ContainerMetrics
		want      int64
		ok        bool
	}{
		{"a quarter CPU over 15 s", sample("a", 1e9, 0), sample("a", 1e9+3_750_000_000, 15*time.Second), 250, true},
		{"one and a half CPUs over 1 s", sample("a", 0, 0), sample("a", 1_500_000_000, time.Second), 1500, true},
		{"idle", sample("a", 7e9, 0), sample("a", 7e9, 15*time.Second), 0, true},
		{"rounded down", sample("a", 0, 0), sample("a", 400_000, time.Second), 0, true},
		{"rounded up", sample("a", 0, 0), sample("a", 600_000, time.Second), 1, true},
		{"first sample", runtime.ContainerMetrics{}, sample("a", 5e9, 15*time.Second), 0, false},
		{"restarted: another run", sample("a", 9e9, 0), sample("b", 1e9, 15*time.Second), 0, false},
		{"counter went back", sample("a", 9e9, 0), sample("a", 1e9, 15*time.Second), 0, false},
		{"no time passed", sample("a", 1e9, time.Second), sample("a", 2e9, time.Second), 0, false},
		{"time went back", sample("a", 1e9, time.Second), sample("a", 2e9, 0), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := milliCPU(tt.prev, tt.cur)
			if got != tt.want || ok != tt.ok {
				t.Errorf("milliCPU = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// The sampler reports rates from the second sample on, and only for pods all of whose running
// containers were measured the time before, as metrics-server: a new pod, or one with a
// restarted container, waits for its next sample.
func TestUsageSampler(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctr := func(name, id string, cpu uint64, mem int64, at time.Duration) runtime.ContainerMetrics {
		return runtime.ContainerMetrics{Name: name, ID: id, CPUUsageNanos: cpu, MemoryWorkingSet: mem, Time: t0.Add(at)}
	}
	pod := func(uid string, ctrs ...runtime.ContainerMetrics) runtime.PodMetrics {
		return runtime.PodMetrics{UID: uid, Namespace: "default", Name: "pod-" + uid, Containers: ctrs}
	}
	var u usageSampler
	if _, ok := u.next("n1", t0, []runtime.PodMetrics{pod("web", ctr("app", "web-app-0", 1e9, 100<<20, 0))}); ok {
		t.Fatal("the first sample made a record: it has no window")
	}
	at := 15 * time.Second
	rec, ok := u.next("n1", t0.Add(at), []runtime.PodMetrics{
		pod("web", ctr("app", "web-app-0", 1e9+3_750_000_000, 120<<20, at)), // 250m
		pod("new", ctr("app", "new-app-0", 2e9, 10<<20, at)),                // first seen
		pod("restarted", ctr("app", "restarted-app-1", 1e6, 10<<20, at)),    // a new run
		pod("empty"), // nothing runs
	})
	if !ok {
		t.Fatal("no record from the second sample")
	}
	want := NodeMetrics{Node: "n1", Timestamp: t0.Add(at), Window: at, MilliCPU: 250, Memory: 120 << 20, Pods: []PodMetrics{
		{UID: "web", Namespace: "default", Name: "pod-web", Containers: []ContainerMetrics{{Name: "app", MilliCPU: 250, Memory: 120 << 20}}},
	}}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("second record:\n%+v\nwant\n%+v", rec, want)
	}

	// The new pod gains a sidecar: the pod waits another sample for it.
	at2 := 30 * time.Second
	rec, _ = u.next("n1", t0.Add(at2), []runtime.PodMetrics{
		pod("web", ctr("app", "web-app-0", 1e9+3_750_000_000+15e9, 130<<20, at2)), // 1000m
		pod("new", ctr("app", "new-app-0", 2e9+7_500_000_000, 20<<20, at2), ctr("log", "new-log-0", 1e6, 1<<20, at2)),
		pod("restarted", ctr("app", "restarted-app-1", 1e6+1_500_000_000, 30<<20, at2)), // 100m
	})
	want = NodeMetrics{Node: "n1", Timestamp: t0.Add(at2), Window: 15 * time.Second, MilliCPU: 1100, Memory: 160 << 20, Pods: []PodMetrics{
		{UID: "web", Namespace: "default", Name: "pod-web", Containers: []ContainerMetrics{{Name: "app", MilliCPU: 1000, Memory: 130 << 20}}},
		{UID: "restarted", Namespace: "default", Name: "pod-restarted", Containers: []ContainerMetrics{{Name: "app", MilliCPU: 100, Memory: 30 << 20}}},
	}}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("third record:\n%+v\nwant\n%+v", rec, want)
	}

	// Gone pods are forgotten; a node without pods reports zeros.
	rec, _ = u.next("n1", t0.Add(45*time.Second), nil)
	if rec.MilliCPU != 0 || rec.Memory != 0 || rec.Pods == nil || len(rec.Pods) != 0 || len(u.prev) != 0 {
		t.Errorf("record of an empty node: %+v (remembered %d containers); want zeros and an empty list", rec, len(u.prev))
	}
}

func TestTopNodesAndPods(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	placed := func(uid, ns, name, node string, phase manifests.PodPhase) (Placement, PodStatusRecord) {
		p := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}}}
		return Placement{Spec: runtime.PodSpec{UID: uid, Pod: p}, Node: node}, PodStatusRecord{UID: uid, Status: manifests.PodStatus{Phase: phase}}
	}
	s := &Snapshot{Now: now, Statuses: map[string]PodStatusRecord{},
		Nodes: []NodeRecord{{Name: "n2", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}}, {Name: "n1", Allocatable: Resources{MilliCPU: 2000, Memory: 4 << 30}},
			{Name: "n3", Allocatable: Resources{MilliCPU: 1000, Memory: 1 << 30}}},
		Known: []NodeRecord{{Name: "gone"}},
		Metrics: map[string]NodeMetrics{
			"n1": {Node: "n1", Timestamp: now, Window: 15 * time.Second, MilliCPU: 500, Memory: 1 << 30, Pods: []PodMetrics{
				{UID: "u-web", Namespace: "default", Name: "web", Containers: []ContainerMetrics{{Name: "app", MilliCPU: 300, Memory: 700 << 20}, {Name: "log", MilliCPU: 200, Memory: 324 << 20}}},
				{UID: "u-moved", Namespace: "default", Name: "moved", Containers: []ContainerMetrics{{Name: "app", MilliCPU: 1, Memory: 1}}},
			}},
			"n2": {Node: "n2", Timestamp: now, Window: 15 * time.Second, MilliCPU: 2999, Memory: 2 << 30, Pods: []PodMetrics{
				{UID: "u-db", Namespace: "shop", Name: "db", Containers: []ContainerMetrics{{Name: "db", MilliCPU: 2999, Memory: 2 << 30}}},
			}},
		},
	}
	for _, p := range []struct {
		uid, ns, name, node string
		phase               manifests.PodPhase
	}{
		{"u-web", "default", "web", "n1", manifests.PodRunning},
		{"u-db", "shop", "db", "n2", manifests.PodRunning},
		{"u-new", "default", "new", "n3", manifests.PodRunning},           // no sample yet
		{"u-moved", "default", "moved", "n3", manifests.PodRunning},       // its sample is of another node
		{"u-pending", "default", "pending", "", manifests.PodPending},     // not placed
		{"u-starting", "default", "starting", "n1", manifests.PodPending}, // not running yet
	} {
		pl, st := placed(p.uid, p.ns, p.name, p.node, p.phase)
		s.Placements = append(s.Placements, pl)
		s.Statuses[p.uid] = st
	}

	nodes := s.TopNodes(manifests.Everything())
	want := []NodeUsage{
		{Name: "n1", Available: true, Timestamp: now, Window: 15 * time.Second, MilliCPU: 500, Memory: 1 << 30, CPUPercent: 25, MemoryPercent: 25,
			Allocatable: Resources{MilliCPU: 2000, Memory: 4 << 30}},
		{Name: "n2", Available: true, Timestamp: now, Window: 15 * time.Second, MilliCPU: 2999, Memory: 2 << 30, CPUPercent: 74, MemoryPercent: 25,
			Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}},
		{Name: "gone"},
		{Name: "n3", Allocatable: Resources{MilliCPU: 1000, Memory: 1 << 30}},
	}
	if !reflect.DeepEqual(nodes.Items, want) {
		t.Errorf("TopNodes:\n%+v\nwant\n%+v", nodes.Items, want)
	}

	all := Filter{All: true, Selector: manifests.Everything()}
	tests := []struct {
		name       string
		f          Filter
		pod        string
		want       []string // namespace/name=milliCPU/memory MiB
		unmeasured []string
	}{
		{"all namespaces", all, "", []string{"default/web=500/1024", "shop/db=2999/2048"}, []string{"default/moved", "default/new"}},
		{"one namespace", Filter{Namespace: "shop", Selector: manifests.Everything()}, "", []string{"shop/db=2999/2048"}, nil},
		{"by name", all, "web", []string{"default/web=500/1024"}, nil},
		{"a pod without a sample", all, "new", nil, []string{"default/new"}},
		{"by label", Filter{Namespace: "default", Selector: mustSelector(t, "app=web")}, "", []string{"default/web=500/1024"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := s.TopPods(tt.f, tt.pod)
			var got []string
			for _, p := range l.Items {
				got = append(got, p.Namespace+"/"+p.Name+"="+itoa(p.MilliCPU)+"/"+itoa(p.Memory>>20))
			}
			slices.Sort(l.Unmeasured)
			if !slices.Equal(got, tt.want) || !slices.Equal(l.Unmeasured, tt.unmeasured) {
				t.Errorf("TopPods = %v, unmeasured %v; want %v, unmeasured %v", got, l.Unmeasured, tt.want, tt.unmeasured)
			}
		})
	}
	if web := s.TopPods(all, "web").Items[0]; len(web.Containers) != 2 || web.Node != "n1" || web.Window != 15*time.Second {
		t.Errorf("web: %+v; want its two containers, node and window", web)
	}
}

func mustSelector(t *testing.T, s string) manifests.Selector {
	t.Helper()
	sel, err := manifests.ParseSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A node measures its pods and keeps its last sample on its lease: the master and `shoal top`
// read it from the store, and it goes when the node does.
func TestNodeMetricsInTheStore(t *testing.T) {
	c := newTestCluster(t)
	ctx := context.Background()
	one := c.git.commit("", "web: 2", map[string]string{"web.yaml": deploymentYAML("web", 2, "registry.local/app:v1")})
	c.push(one)
	s := c.waitFor("convergence", func(s *Snapshot) bool { return s.Converged == one })
	pods := s.Pods()
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2", len(pods))
	}
	use := map[string][2]int64{pods[0].UID: {250, 100 << 20}, pods[1].UID: {1500, 300 << 20}}
	for uid, u := range use {
		c.driver.SetUsage(uid, "app", u[0], u[1])
	}
	// The first sample after SetUsage may span the change: wait for one at the new rates.
	s = c.waitFor("a sample at the rates set", func(s *Snapshot) bool {
		m, ok := s.Metrics["n1"]
		if !ok || len(m.Pods) != 2 {
			return false
		}
		for _, p := range m.Pods {
			if want := use[p.UID]; len(p.Containers) != 1 || p.Containers[0].MilliCPU != want[0] || p.Containers[0].Memory != want[1] {
				return false
			}
		}
		return true
	})
	m := s.Metrics["n1"]
	if m.Node != "n1" || m.MilliCPU != 1750 || m.Memory != 400<<20 || m.Window <= 0 || m.Window > time.Second || s.Now.Sub(m.Timestamp) > 10*time.Second {
		t.Errorf("n1's record: node %q, %dm, %d bytes, window %v, at %v; want n1, 1750m, 400Mi, a window of about %v, recent",
			m.Node, m.MilliCPU, m.Memory, m.Window, m.Timestamp, testMetricsInterval)
	}
	for _, p := range m.Pods {
		if p.Namespace != "default" || p.Containers[0].Name != "app" {
			t.Errorf("pod %+v; want its namespace, name and container", p)
		}
	}
	if n := s.TopNodes(manifests.Everything()).Items; len(n) != 1 || !n[0].Available || n[0].CPUPercent != 43 || n[0].MemoryPercent != 4 {
		t.Errorf("TopNodes = %+v; want n1 at 43%% of its CPU and 4%% of its memory", n)
	}
	if l := s.TopPods(Filter{Namespace: "default", Selector: manifests.Everything()}, ""); len(l.Items) != 2 || len(l.Unmeasured) != 0 {
		t.Errorf("TopPods = %+v; want both pods", l)
	}

	// The record is on the node's lease.
	resp, err := c.st.Etcd().Get(ctx, metricsKey("n1"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := c.st.Etcd().Get(ctx, nodeKey("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || len(node.Kvs) != 1 || resp.Kvs[0].Lease == 0 || resp.Kvs[0].Lease != node.Kvs[0].Lease {
		t.Errorf("the metrics key is not on the node's lease: %+v, node %+v", resp.Kvs, node.Kvs)
	}

	// Another node reports too, and its record goes with it.
	stop := c.addNode("n2")
	c.waitFor("n2's record", func(s *Snapshot) bool { _, ok := s.Metrics["n2"]; return ok })
	stop()
	c.waitFor("n2's record gone", func(s *Snapshot) bool { _, ok := s.Metrics["n2"]; return !ok })
}
