package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// percentiles reports p50 and p99 of samples as metrics named prefix+"-p50-s" and prefix+"-p99-s".
func percentiles(b *testing.B, prefix string, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	at := func(p float64) float64 { return samples[int(p*float64(len(samples)-1))].Seconds() }
	b.ReportMetric(at(0.5), prefix+"-p50-s")
	b.ReportMetric(at(0.99), prefix+"-p99-s")
}

// BenchmarkFailover runs three nodes in network namespaces (lease TTL 5 s) and, b.N times
// (-benchtime=10x or more), SIGKILLs the master (any node: each runs one of the store's three
// members) and measures the time until another node leads (master-failover), then the time until
// the killed node's pods are Running and Ready elsewhere (node-loss, node-lost grace 10 s). The killed node is
// restarted and the cluster converges before the next round; each round starts with a new version
// of the Deployment so that every node has pods again. Rounds whose master had no pod count only
// for the failover.
func BenchmarkFailover(b *testing.B) {
	needRoot(b)
	c := newLANCluster(b, 3)
	sha := c.repo.commit("web: 6 replicas", map[string]string{"web.yaml": deployment("web", 6, "v1", "")})
	c.startAll()
	c.waitAllConverged(b, sha, 3*time.Minute)
	var failover, loss []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// A new version each round: the rollout spreads the pods over the three nodes again, so
		// the node that is killed has pods to lose.
		sha = c.repo.commit("web: round", map[string]string{"web.yaml": deployment("web", 6, "r"+time.Now().Format("150405.000"), "")})
		c.waitAllConverged(b, sha, 3*time.Minute)
		master := c.node(b, c.nodes[0].status().Master)
		n1 := c.nodes[0] // the node the benchmark watches through: not the master
		if master == n1 {
			n1 = c.nodes[1]
		}
		before, err := n1.lanPods()
		if err != nil {
			b.Fatal(err)
		}
		had := podsByNode(before, "web-")[master.name]
		marks := map[*lanNode]int{}
		for _, n := range c.nodes {
			marks[n] = n.logLen()
		}
		b.StartTimer()
		killed := time.Now()
		master.kill()
		waitUntil(b, "a new master", 60*time.Second, func() bool {
			m := n1.status().Master
			return m != "" && m != master.name
		})
		failover = append(failover, time.Since(killed))
		waitUntil(b, "the lost node's pods Ready elsewhere", 2*time.Minute, func() bool {
			pods, err := n1.lanPods()
			if err != nil {
				return false
			}
			ready := 0
			for _, p := range pods {
				if p.Node != master.name && p.Ready {
					ready++
				}
			}
			return ready == 6
		})
		if had > 0 {
			d := time.Since(killed)
			loss = append(loss, d)
			if dir := os.Getenv("SHOAL_BENCH_LOG_DIR"); dir != "" && d > 20*time.Second {
				// Above the target: keep what the other nodes said, to see where the time went.
				for _, n := range c.nodes {
					if n != master {
						p := filepath.Join(dir, fmt.Sprintf("round%d-%s.log", i, n.name))
						_ = os.WriteFile(p, []byte(withoutDebug(n.logSince(marks[n]))), 0o644)
						b.Logf("round %d: node loss took %v; log of %s since the kill in %s", i, d.Round(100*time.Millisecond), n.name, p)
					}
				}
			}
		}
		b.StopTimer()
		master.start(b)
		master.waitAPI(b)
		c.waitAllConverged(b, sha, 2*time.Minute)
		c.waitOnlyAssignedRun(b, master)
		b.StartTimer()
	}
	b.StopTimer()
	percentiles(b, "master-failover", failover)
	percentiles(b, "node-loss", loss)
}
