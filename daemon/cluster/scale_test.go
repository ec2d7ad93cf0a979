package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// simCluster is a large cluster on one machine: a real embedded etcd (one member or three), one
// real master in a process of its own (so that its CPU time and memory are its own), and n
// simulated nodes in this process, each the real agent over its own fake runtime, sharing one
// store connection.
type simCluster struct {
	st     *store.Client   // the agents'
	own    []*store.Client // of the agents that can crash
	mon    *store.Client   // the benchmark's own, to wait and look
	master *simMaster
	nodes  int
	// crash stops one node in ten as a crash would (no goodbye to the store).
	crash []func()
}

func newSimCluster(tb testing.TB, nodes, members int) *simCluster {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	endpoints := startSimStore(tb, members)
	st, err := store.Connect(ctx, store.Config{Endpoints: endpoints})
	if err != nil {
		tb.Fatal(err)
	}
	mon, err := store.Connect(ctx, store.Config{Endpoints: endpoints})
	if err != nil {
		tb.Fatal(err)
	}
	c := &simCluster{st: st, mon: mon, nodes: nodes}
	// The nodes are the cluster CA's, as a real cluster's: each publishes its certificate, and
	// the master (which holds the CA key) seals the Secrets of their pods to it.
	ca, pkiDir := simCA(tb)
	var wg sync.WaitGroup
	var runtimes []*lifecycle.Manager
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
			oc, err := store.Connect(ctx, store.Config{Endpoints: endpoints})
			if err != nil {
				tb.Fatal(err)
			}
			c.own = append(c.own, oc)
			var acancel context.CancelFunc
			actx, acancel = context.WithCancel(ctx)
			c.crash = append(c.crash, func() {
				oc.Close()
				acancel()
			})
			client = oc
		}
		// No usage samples (a write every 15 s per node): the simulation counts the writes of
		// the pods' lifecycle.
		keys := nodeKeys(tb, ca, simNode(i))
		keys.CAKey = nil
		agent := NewAgent(AgentConfig{Node: simNode(i), Store: client, Runtime: rt, TTL: 5 * time.Second, MetricsInterval: -1,
			Record: NodeRecord{Allocatable: Resources{MilliCPU: 64000, Memory: 256 << 30}}, Keys: keys})
		wg.Go(func() { _ = agent.Run(actx) })
	}
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, rt := range runtimes {
			rt.Close()
		}
		for _, oc := range c.own {
			oc.Close()
		}
		st.Close()
		mon.Close()
	})
	c.master = startSimMaster(tb, endpoints, pkiDir)
	c.waitNodes(tb)
	return c
}

// startSimStore starts an embedded etcd of one member or three (on loopback peer ports) and
// returns its client endpoints.
func startSimStore(tb testing.TB, members int) []string {
	tb.Helper()
	names, peers := make([]string, members), make([]string, members)
	var initial []string
	for i := range members {
		names[i] = fmt.Sprint("sim-store-", i)
		peers[i] = store.DefaultPeerURL
		if members > 1 {
			peers[i] = "http://" + freeLoopbackPort(tb)
		}
		initial = append(initial, names[i]+"="+peers[i])
	}
	embs := make([]*store.Embedded, members)
	errs := make([]error, members)
	var wg sync.WaitGroup
	for i := range members {
		wg.Go(func() {
			embs[i], errs[i] = store.StartEmbedded(context.Background(), store.EmbedConfig{Dir: tb.TempDir(), Name: names[i],
				PeerURL: peers[i], InitialCluster: strings.Join(initial, ",")})
		})
	}
	wg.Wait()
	var endpoints []string
	for i, emb := range embs {
		if errs[i] != nil {
			tb.Fatal(errs[i])
		}
		tb.Cleanup(func() { emb.Close() })
		endpoints = append(endpoints, emb.Endpoints()...)
	}
	return endpoints
}

// freeLoopbackPort returns a loopback address with a port that was free a moment ago.
func freeLoopbackPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func simNode(i int) string { return fmt.Sprintf("sim-%04d", i) }

// simCA makes the simulated cluster's CA and saves it (with its key, for the master's process)
// in a directory.
func simCA(tb testing.TB) (*pki.CA, string) {
	tb.Helper()
	ca, err := pki.NewCA("sim", time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := ca.Save(dir); err != nil {
		tb.Fatal(err)
	}
	return ca, dir
}

// waitNodes waits until every node is registered.
func (c *simCluster) waitNodes(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		kvs, _, err := store.List[NodeRecord](context.Background(), c.mon, nodesPrefix)
		if err == nil && len(kvs) == c.nodes {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%d nodes did not register", c.nodes)
}

// simFiles is a commit of deployments (name -> replicas), all pods of one image, with env value
// version (a new value replaces every pod of that Deployment). The pods of "single" and "big"
// also read Secret sim-token: their placements carry it sealed to their node.
func simFiles(deployments map[string]int, version map[string]string) map[string]string {
	files := map[string]string{"secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: sim-token}\nstringData: {token: sim-s3cret}\n"}
	for name, n := range deployments {
		env := `env: [{name: VERSION, value: "` + version[name] + `"}]`
		if name == "single" || name == "big" {
			env = `env: [{name: VERSION, value: "` + version[name] + `"}, {name: TOKEN, valueFrom: {secretKeyRef: {name: sim-token, key: token}}}]`
		}
		files[name+".yaml"] = strings.Replace(deploymentYAML(name, n, "registry.local/app:v1"),
			`args: ["serve", "8080"]`, `args: ["serve", "8080"]
          `+env+`
          resources: {requests: {cpu: 10m, memory: 16Mi}}`, 1)
	}
	return files
}

// push commits deployments on top of parent, hands the commit to the master and waits, on a
// watch (so that waiting reads nothing of the store), until the master marks it converged. It
// returns the commit and how long that took.
func (c *simCluster) push(tb testing.TB, parent string, deployments map[string]int, version map[string]string, within time.Duration) (string, time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	events := store.Watch[string](ctx, c.mon, convergedKey, 0)
	start := time.Now()
	sha := c.master.commit(tb, parent, simFiles(deployments, version))
	for ev := range events {
		if ev.Type == store.EventPut && ev.Value == sha {
			return sha, time.Since(start)
		}
	}
	tb.Fatalf("commit %s not converged within %v", sha[len(sha)-6:], within)
	return "", 0
}

// agentRequests sums the requests of the agents' store connections.
func (c *simCluster) agentRequests() store.Requests {
	r := c.st.Requests()
	for _, oc := range c.own {
		o := oc.Requests()
		r.Reads, r.Writes, r.KeysRead = r.Reads+o.Reads, r.Writes+o.Writes, r.KeysRead+o.KeysRead
		r.BytesWritten, r.WatchEvents = r.BytesWritten+o.BytesWritten, r.WatchEvents+o.WatchEvents
	}
	return r
}

// changeCost is what a change cost: the master's keys written and store requests, its CPU time,
// and the watch events the agents received and the writes they made.
type changeCost struct {
	took        time.Duration
	keys        float64
	master      store.Requests
	masterCPU   time.Duration
	agentEvents int64
	agentWrites int64
}

// onePodChange changes the one-replica Deployment "single" and measures what it cost.
func (c *simCluster) onePodChange(tb testing.TB, parent string, deployments map[string]int, version map[string]string, i int) (string, changeCost) {
	version["single"] = fmt.Sprint("v", i)
	m0, cpu0, a0 := c.master.stats(tb), c.master.cpu(tb), c.agentRequests()
	sha, took := c.push(tb, parent, deployments, version, time.Minute)
	m1, cpu1, a1 := c.master.stats(tb), c.master.cpu(tb), c.agentRequests()
	return sha, changeCost{took: took, keys: m1.Keys - m0.Keys, master: m1.Requests.Sub(m0.Requests), masterCPU: cpu1 - cpu0,
		agentEvents: a1.Sub(a0).WatchEvents, agentWrites: a1.Sub(a0).Writes}
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
		kvs, _, err := store.List[DeploymentRecord](context.Background(), c.mon, deploymentsPrefix)
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
// store on 40 nodes as on 10 (it reads a mirror fed by watches, not the store), and the agents
// receive as many watch events in all.
func TestSimulatedClusterCostGrowsWithTheChange(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated cluster of 40 nodes")
	}
	type cost struct{ keys, reads, writes, keysRead, bytes, events, agentWrites int64 }
	costs := map[int]cost{}
	for _, nodes := range []int{10, 40} {
		c := newSimCluster(t, nodes, 1)
		deployments := map[string]int{"bulk": 5 * nodes, "single": 1}
		version := map[string]string{"bulk": "v0", "single": "v0"}
		sha, _ := c.push(t, "", deployments, version, 2*time.Minute)
		var ks, rs, ws, kr, bs, es, aw []int64
		for i := range 5 {
			var cc changeCost
			sha, cc = c.onePodChange(t, sha, deployments, version, i+1)
			ks, rs, ws, kr = append(ks, int64(cc.keys)), append(rs, cc.master.Reads), append(ws, cc.master.Writes), append(kr, cc.master.KeysRead)
			bs, es, aw = append(bs, cc.master.BytesWritten), append(es, cc.agentEvents), append(aw, cc.agentWrites)
		}
		cst := cost{median(ks), median(rs), median(ws), median(kr), median(bs), median(es), median(aw)}
		costs[nodes] = cst
		t.Logf("%d nodes, %d pods: a one-pod change: the master wrote %d keys (%d bytes) in %d requests and read %d keys in %d requests; the agents received %d watch events and wrote %d times (medians of 5)",
			nodes, 5*nodes+1, cst.keys, cst.bytes, cst.writes, cst.keysRead, cst.reads, cst.events, cst.agentWrites)
	}
	small, large := costs[10], costs[40]
	if large.keys > small.keys+2 || large.writes > small.writes+2 || large.reads > small.reads+2 || large.keysRead > small.keysRead+2 {
		t.Errorf("a one-pod change costs the master more on 40 nodes (%+v) than on 10 (%+v): its cost grows with the cluster", large, small)
	}
	if large.events > small.events+4 || large.agentWrites > small.agentWrites+4 {
		t.Errorf("a one-pod change costs the agents more on 40 nodes (%d watch events, %d writes) than on 10 (%d, %d): every node hears of every change",
			large.events, large.agentWrites, small.events, small.agentWrites)
	}
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkScale is the simulated cluster at 100, 300 and 1,000 nodes with 31 pods each over a
// one-member store, and at 1,000 nodes over three members (make bench-scale): the time to place
// and converge every pod from empty; a one-pod change's commit to converged (median and slowest
// of 20), with the keys and bytes the master wrote, its store requests and CPU time, and the
// watch events the agents received; a rolling update of a Deployment with one replica per node
// ("big", 1,000 replicas on 1,000 nodes); the loss of one node in ten until their pods are
// Ready elsewhere; and the master process's memory at the end.
func BenchmarkScale(b *testing.B) {
	for _, size := range []struct{ nodes, members int }{{100, 1}, {300, 1}, {1000, 1}, {1000, 3}} {
		b.Run(fmt.Sprintf("nodes=%d/members=%d", size.nodes, size.members), func(b *testing.B) {
			for b.Loop() {
				benchScale(b, size.nodes, size.members)
			}
		})
	}
}

func benchScale(b *testing.B, nodes, members int) {
	c := newSimCluster(b, nodes, members)
	deployments := map[string]int{"single": 1, "big": nodes}
	version := map[string]string{"single": "v0", "big": "v0"}
	for d := range 10 {
		deployments[fmt.Sprint("bulk-", d)] = 3 * nodes
	}
	cpu0 := c.master.cpu(b)
	sha, fromEmpty := c.push(b, "", deployments, version, 10*time.Minute)
	cpuEmpty := c.master.cpu(b) - cpu0
	_, peakEmpty := c.master.memory(b)
	b.ReportMetric(peakEmpty, "master-peak-rss-MiB-from-empty")
	var took, cpu []time.Duration
	var ks []float64
	var rs, ws, kr, bs, es, aw []int64
	for i := range 20 {
		var cc changeCost
		sha, cc = c.onePodChange(b, sha, deployments, version, i+1)
		took, cpu, ks = append(took, cc.took), append(cpu, cc.masterCPU), append(ks, cc.keys)
		rs, ws, kr = append(rs, cc.master.Reads), append(ws, cc.master.Writes), append(kr, cc.master.KeysRead)
		bs, es, aw = append(bs, cc.master.BytesWritten), append(es, cc.agentEvents), append(aw, cc.agentWrites)
	}
	b.ReportMetric(fromEmpty.Seconds(), "s-from-empty")
	b.ReportMetric(cpuEmpty.Seconds(), "master-cpu-s-from-empty")
	b.ReportMetric(float64(median(took).Milliseconds()), "ms-one-pod-p50")
	b.ReportMetric(float64(slices.Max(took).Milliseconds()), "ms-one-pod-max")
	var cpuAll time.Duration
	for _, d := range cpu {
		cpuAll += d
	}
	b.ReportMetric(float64(cpuAll.Milliseconds())/float64(len(cpu)), "master-cpu-ms-one-pod") // a mean: the clock ticks are 10 ms
	b.ReportMetric(median(ks), "keys-one-pod")
	b.ReportMetric(float64(median(bs)), "bytes-one-pod")
	b.ReportMetric(float64(median(ws)), "writes-one-pod")
	b.ReportMetric(float64(median(rs)), "reads-one-pod")
	b.ReportMetric(float64(median(kr)), "keys-read-one-pod")
	b.ReportMetric(float64(median(es))/float64(nodes), "watch-events-per-node-one-pod")
	b.ReportMetric(float64(median(aw)), "agent-writes-one-pod")
	version["big"] = "v1"
	a0, cpu0 := c.agentRequests(), c.master.cpu(b)
	_, rollout := c.push(b, sha, deployments, version, 10*time.Minute)
	b.ReportMetric(rollout.Seconds(), "s-rollout-big")
	b.ReportMetric(float64(c.agentRequests().Sub(a0).WatchEvents)/float64(nodes), "watch-events-per-node-rollout")
	b.ReportMetric((c.master.cpu(b) - cpu0).Seconds(), "master-cpu-s-rollout")
	b.ReportMetric(c.loseTenth(b, deployments).Seconds(), "s-10pct-lost-to-ready")
	pss, peak := c.master.memory(b)
	b.ReportMetric(pss, "master-pss-MiB")
	b.ReportMetric(peak, "master-peak-rss-MiB")
}
