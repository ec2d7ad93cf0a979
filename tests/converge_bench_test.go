package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
)

// BenchmarkCommitToConverged3Nodes runs three nodes in network namespaces following a git server
// (poll 1 s) with 3 Deployments × 10 replicas spread over them. Each round commits a new version
// of every pod and measures, from the moment the push returns, until the status on node 1 shows
// the commit applied (applied), marked converged by the master (master-converged), and reported
// converged by every node (converged, the figure of the benchmark). The status is read through
// node 1's API socket every 20 ms. Run with -benchtime=10x; set SHOAL_BENCH_LOG_DIR to a
// directory to keep the daemons' debug logs and a trace of the status during the rounds there.
func BenchmarkCommitToConverged3Nodes(b *testing.B) {
	needRoot(b)
	const deployments, replicas = 3, 10
	files := func(version string) map[string]string {
		f := map[string]string{}
		for i := 0; i < deployments; i++ {
			f[fmt.Sprintf("d%d.yaml", i)] = plainDeployment(fmt.Sprintf("d%d", i), replicas, version)
		}
		return f
	}
	c := newLANCluster(b, 3)
	// The Deployments come once every node is in: committed before, they would all land on the
	// first node up.
	c.repo.commit("start", map[string]string{"README.md": "cluster\n"})
	c.startAll()
	sha := c.repo.commit("v0", files("v0"))
	c.waitAllConverged(b, sha, 5*time.Minute)
	n1 := c.nodes[0]
	api, err := client.New(client.Config{Socket: n1.sock})
	if err != nil {
		b.Fatal(err)
	}
	spread := func() map[string]int {
		pods, err := n1.lanPods()
		if err != nil {
			b.Fatal(err)
		}
		return podsByNode(pods, "d")
	}
	if s := spread(); len(s) != len(c.nodes) {
		b.Fatalf("the pods are not spread over the %d nodes: %v", len(c.nodes), s)
	}

	logDir := os.Getenv("SHOAL_BENCH_LOG_DIR")
	var trace strings.Builder // with logDir: every change of the status during the rounds
	var applied, marked, converged []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		b.StopTimer()
		version := fmt.Sprintf("v%d-%s", i, randHex(2))
		sha := c.repo.commit(version, files(version))
		b.StartTimer()
		pushed := time.Now()
		var seenApplied, seenMarked time.Duration
		deadline := pushed.Add(3 * time.Minute)
		last := ""
		if logDir != "" {
			fmt.Fprintf(&trace, "round %d: %s pushed at %s\n", i, sha[:7], pushed.Format("15:04:05.000"))
		}
		for {
			var st cluster.Status
			if err := api.Get(context.Background(), "/v1/status", nil, &st); err == nil {
				since := time.Since(pushed)
				if line := statusLine(st, sha); logDir != "" && line != last {
					fmt.Fprintf(&trace, "  %6dms %s\n", since.Milliseconds(), line)
					last = line
				}
				if seenApplied == 0 && st.Applied != nil && st.Applied.SHA == sha {
					seenApplied = since
				}
				if seenMarked == 0 && st.Converged == sha {
					seenMarked = since
				}
				if allConverged(st, sha, len(c.nodes)) {
					if seenApplied == 0 {
						seenApplied = since
					}
					applied, marked, converged = append(applied, seenApplied), append(marked, seenMarked), append(converged, since)
					b.Logf("round %d: %s pushed at %s, applied %v, marked converged %v, every node converged %v", i, sha[:7],
						pushed.Format("15:04:05.000"), seenApplied.Round(time.Millisecond), seenMarked.Round(time.Millisecond), since.Round(time.Millisecond))
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("round %d: no convergence to %s in 3 minutes", i, sha[:7])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.StopTimer()
	b.Logf("pods per node after %d rounds: %v", b.N, spread())
	percentiles(b, "applied", applied)
	percentiles(b, "master-converged", marked)
	percentiles(b, "converged", converged)
	if logDir != "" {
		for _, n := range c.nodes {
			n.logMu.Lock()
			err := os.WriteFile(filepath.Join(logDir, n.name+".log"), n.log.Bytes(), 0o644)
			n.logMu.Unlock()
			if err != nil {
				b.Error(err)
			}
		}
		if err := os.WriteFile(filepath.Join(logDir, "status-trace.txt"), []byte(trace.String()), 0o644); err != nil {
			b.Error(err)
		}
	}
}

// statusLine sums up the progress of a rollout to sha: whether it is applied, each Deployment's
// updated/ready/available pods, and the nodes that report it converged.
func statusLine(st cluster.Status, sha string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "applied=%v master-converged=%v", st.Applied != nil && st.Applied.SHA == sha, st.Converged == sha)
	for _, d := range st.Deployments {
		fmt.Fprintf(&sb, " %s=%d/%d/%d", d.Name, d.Updated, d.Ready, d.Available)
	}
	sb.WriteString(" nodes-converged=")
	for _, n := range st.Nodes {
		if n.Converged == sha {
			sb.WriteString(n.Name + ",")
		}
	}
	return sb.String()
}

// allConverged is waitAllConverged's condition on one status: the master marked sha converged
// and each of the n nodes reports it.
func allConverged(st cluster.Status, sha string, n int) bool {
	if st.Converged != sha || len(st.Nodes) != n {
		return false
	}
	for _, ns := range st.Nodes {
		if ns.Converged != sha {
			return false
		}
	}
	return true
}
