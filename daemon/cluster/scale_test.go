package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// simCluster is a large cluster in one process: one real master over a real embedded etcd,
// and n simulated nodes, each the real agent over its own fake runtime, all sharing one store
// connection.
type simCluster struct {
	st      *store.Client // the agents'
	mst     *store.Client // the master's own, to count its requests
	git     *fakeGit
	master  *Master
	metrics *Metrics
	nodes   int
	// crash stops one node in ten as a crash would (no goodbye to the store).
	crash []func()
}

func newSimCluster(tb testing.TB, nodes int) *simCluster {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := store.StartEmbedded(ctx, store.EmbedConfig{Dir: tb.TempDir(), Name: "sim"})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Connect(ctx, store.Config{Endpoints: emb.Endpoints()})
	if err != nil {
		tb.Fatal(err)
	}
	mst, err := store.Connect(ctx, store.Config{Endpoints: emb.Endpoints()})
	if err != nil {
		tb.Fatal(err)
	}
	c := &simCluster{st: st, mst: mst, git: &fakeGit{commits: map[string]fakeCommit{}}, metrics: NewMetrics(nil), nodes: nodes}
	var wg sync.WaitGroup
	var runtimes []*lifecycle.Manager
	var own []*store.Client
	for i := range nodes {
		rt, err := lifecycle.New(lifecycle.Config{Driver: fake.New(fake.TestAppImage("registry.local/app:v1")),
			Backoff: lifecycle.Backoff{Base: 100 * time.Millisecond}, EvictionInterval: -1})
		if err != nil {
			tb.Fatal(err)
		}
		runtimes = append(runtimes, rt)
		client, actx := st, ctx
		if i%10 == 9 {
			// One node in ten has a connection of its own, so that it can crash: its connection
			// closes without revoking its lease, which expires as a dead node's does.
			oc, err := store.Connect(ctx, store.Config{Endpoints: emb.Endpoints()})
			if err != nil {
				tb.Fatal(err)
			}
			own = append(own, oc)
			var acancel context.CancelFunc
			actx, acancel = context.WithCancel(ctx)
			c.crash = append(c.crash, func() {
				oc.Close()
				acancel()
			})
			client = oc
		}
		agent := NewAgent(AgentConfig{Node: simNode(i), Store: client, Runtime: rt, TTL: 5 * time.Second,
			Record: NodeRecord{Allocatable: Resources{MilliCPU: 64000, Memory: 256 << 30}}})
		wg.Go(func() { _ = agent.Run(actx) })
	}
	c.master = NewMaster(MasterConfig{Node: simNode(0), Store: mst, Git: c.git, Metrics: c.metrics})
	wg.Go(func() {
		for ctx.Err() == nil {
			lead, err := mst.Campaign(ctx, masterPrefix, simNode(0), 5*time.Second)
			if err != nil {
				return
			}
			_ = c.master.Run(ctx, lead)
		}
	})
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, rt := range runtimes {
			rt.Close()
		}
		for _, oc := range own {
			oc.Close()
		}
		mst.Close()
		st.Close()
		emb.Close()
	})
	c.waitNodes(tb)
	return c
}

func simNode(i int) string { return fmt.Sprintf("sim-%04d", i) }

// waitNodes waits until every node is registered.
func (c *simCluster) waitNodes(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		kvs, _, err := store.List[NodeRecord](context.Background(), c.st, nodesPrefix)
		if err == nil && len(kvs) == c.nodes {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%d nodes did not register", c.nodes)
}

// commit makes a commit of deployments (name -> replicas) on top of parent, all pods of one
// image, with env value version (a new value replaces every pod of that Deployment).
func (c *simCluster) commit(parent string, deployments map[string]int, version map[string]string) string {
	files := map[string]string{}
	for name, n := range deployments {
		files[name+".yaml"] = strings.Replace(deploymentYAML(name, n, "registry.local/app:v1"),
			`args: ["serve", "8080"]`, `args: ["serve", "8080"]
          env: [{name: VERSION, value: "`+version[name]+`"}]
          resources: {requests: {cpu: 10m, memory: 16Mi}}`, 1)
	}
	return c.git.commit(parent, "sim", files)
}

// converge pushes sha and waits, on a watch (so that waiting reads nothing of the store), until
// the master marks it converged; it returns how long that took.
func (c *simCluster) converge(tb testing.TB, sha string, within time.Duration) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	events := store.Watch[string](ctx, c.st, convergedKey, 0)
	start := time.Now()
	c.master.SetHead(Head{SHA: sha, SeenAt: start})
	for ev := range events {
		if ev.Type == store.EventPut && ev.Value == sha {
			return time.Since(start)
		}
	}
	tb.Fatalf("commit %s not converged within %v", sha[len(sha)-6:], within)
	return 0
}

// onePodChange measures a change of a one-replica Deployment: the time to converged, the keys
// the master wrote, and the master's store requests (reads and writes) meanwhile.
func (c *simCluster) onePodChange(tb testing.TB, parent string, deployments map[string]int, version map[string]string, i int) (sha string, took time.Duration, keys float64, req store.Requests) {
	version["single"] = fmt.Sprint("v", i)
	sha = c.commit(parent, deployments, version)
	k0, r0 := counterValue(c.metrics.StoreWrites), c.mst.Requests()
	took = c.converge(tb, sha, time.Minute)
	r1 := c.mst.Requests()
	return sha, took, counterValue(c.metrics.StoreWrites) - k0, store.Requests{Reads: r1.Reads - r0.Reads, Writes: r1.Writes - r0.Writes, KeysRead: r1.KeysRead - r0.KeysRead}
}

// loseTenth crashes one node in ten and returns how long it took until every Deployment had all
// its replicas Ready again (the lease TTL and the node-lost grace, 5 s and 10 s, included).
func (c *simCluster) loseTenth(tb testing.TB, deployments map[string]int) time.Duration {
	tb.Helper()
	start := time.Now()
	for _, f := range c.crash {
		f()
	}
	seenLoss := false
	for time.Since(start) < 5*time.Minute {
		kvs, _, err := store.List[DeploymentRecord](context.Background(), c.st, deploymentsPrefix)
		if err == nil {
			ready := len(kvs) == len(deployments)
			for _, kv := range kvs {
				if int(kv.Value.Status.ReadyReplicas) != deployments[kv.Value.Name] {
					ready = false
				}
			}
			seenLoss = seenLoss || !ready
			if ready && seenLoss {
				return time.Since(start)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	tb.Fatalf("the lost nodes' pods were not Ready elsewhere within 5 minutes")
	return 0
}

// counterValue reads a counter (prometheus/testutil would do it, at the cost of another module).
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// TestSimulatedClusterCostGrowsWithTheChange runs the simulation at two sizes: every pod is
// placed and converges, and for a one-pod change the master reads and writes as much of the
// store on 40 nodes as on 10: it reads a mirror fed by watches, not the store.
func TestSimulatedClusterCostGrowsWithTheChange(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated cluster of 40 nodes")
	}
	type cost struct{ keys, reads, writes, keysRead int64 }
	costs := map[int]cost{}
	for _, nodes := range []int{10, 40} {
		c := newSimCluster(t, nodes)
		deployments := map[string]int{"bulk": 5 * nodes, "single": 1}
		version := map[string]string{"bulk": "v0", "single": "v0"}
		sha := c.commit("", deployments, version)
		c.converge(t, sha, 2*time.Minute)
		var ks, rs, ws, kr []int64
		for i := range 5 {
			var k float64
			var r store.Requests
			sha, _, k, r = c.onePodChange(t, sha, deployments, version, i+1)
			ks, rs, ws, kr = append(ks, int64(k)), append(rs, r.Reads), append(ws, r.Writes), append(kr, r.KeysRead)
		}
		cst := cost{median(ks), median(rs), median(ws), median(kr)}
		costs[nodes] = cst
		t.Logf("%d nodes, %d pods: a one-pod change: the master wrote %d keys in %d requests, and read %d keys in %d requests (medians of 5)",
			nodes, 5*nodes+1, cst.keys, cst.writes, cst.keysRead, cst.reads)
	}
	small, large := costs[10], costs[40]
	if large.keys > small.keys+2 || large.writes > small.writes+2 || large.reads > small.reads+2 || large.keysRead > small.keysRead+2 {
		t.Errorf("a one-pod change costs the master more on 40 nodes (%+v) than on 10 (%+v): its cost grows with the cluster", large, small)
	}
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkScale is the simulated cluster at 100, 300 and 1,000 nodes with 31 pods each
// (make bench-scale): the time to place and converge every pod from empty, a one-pod change's
// commit to converged (median and slowest of 20) with the keys the master wrote and its store
// requests, a rolling update of a Deployment with one replica per node ("big", 1,000 replicas
// on 1,000 nodes), and the loss of one node in ten until their pods are Ready elsewhere.
func BenchmarkScale(b *testing.B) {
	for _, nodes := range []int{100, 300, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			for b.Loop() {
				c := newSimCluster(b, nodes)
				deployments := map[string]int{"single": 1, "big": nodes}
				version := map[string]string{"single": "v0", "big": "v0"}
				for d := range 10 {
					deployments[fmt.Sprint("bulk-", d)] = 3 * nodes
				}
				sha := c.commit("", deployments, version)
				fromEmpty := c.converge(b, sha, 10*time.Minute)
				var took []time.Duration
				var ks []float64
				var rs, ws, kr []int64
				for i := range 20 {
					var d time.Duration
					var k float64
					var r store.Requests
					sha, d, k, r = c.onePodChange(b, sha, deployments, version, i+1)
					took, ks, rs, ws, kr = append(took, d), append(ks, k), append(rs, r.Reads), append(ws, r.Writes), append(kr, r.KeysRead)
				}
				b.ReportMetric(fromEmpty.Seconds(), "s-from-empty")
				b.ReportMetric(float64(median(took).Milliseconds()), "ms-one-pod-p50")
				b.ReportMetric(float64(slices.Max(took).Milliseconds()), "ms-one-pod-max")
				b.ReportMetric(median(ks), "keys-one-pod")
				b.ReportMetric(float64(median(ws)), "writes-one-pod")
				b.ReportMetric(float64(median(rs)), "reads-one-pod")
				b.ReportMetric(float64(median(kr)), "keys-read-one-pod")
				version["big"] = "v1"
				sha = c.commit(sha, deployments, version)
				b.ReportMetric(c.converge(b, sha, 10*time.Minute).Seconds(), "s-rollout-big")
				b.ReportMetric(c.loseTenth(b, deployments).Seconds(), "s-10pct-lost-to-ready")
			}
		})
	}
}
