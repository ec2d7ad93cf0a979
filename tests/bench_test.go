package tests

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
)

func plainDeployment(name string, replicas int, version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: localhost/e2e/app:v1
          args: ["serve", "8080"]
          env: [{name: VERSION, value: "%[3]s"}]
`, name, replicas, version)
}

// BenchmarkCommitToConverged measures, on one node following a local repository (seen through
// fsnotify), the time from `git commit` until every affected pod of the new commit is Ready: for
// a change of 1 pod and of 30 pods (3 Deployments × 10, rolled with the default 25%/25%). Run
// with -benchtime=20x or more; it reports p50-ms and p99-ms, and the daemon's RSS
// (daemon-rss-MiB, embedded etcd included, containers and shims excluded).
func BenchmarkCommitToConverged(b *testing.B) {
	for _, tc := range []struct {
		name        string
		deployments int
		replicas    int
	}{{"pods=1", 1, 1}, {"pods=30", 3, 10}} {
		b.Run(tc.name, func(b *testing.B) {
			benchCommitToConverged(b, tc.deployments, tc.replicas)
		})
	}
}

func benchCommitToConverged(b *testing.B, deployments, replicas int) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	repo := newGitRepo(b)
	files := func(version string) map[string]string {
		f := map[string]string{}
		for i := 0; i < deployments; i++ {
			f[fmt.Sprintf("d%d.yaml", i)] = plainDeployment(fmt.Sprintf("d%d", i), replicas, version)
		}
		return f
	}
	sha := repo.commitLocal("v0", files("v0"))
	n := startNode(b, "file://"+repo.work)
	c, err := client.New(client.Config{Socket: n.sock})
	if err != nil {
		b.Fatal(err)
	}
	status := func() cluster.Status {
		var st cluster.Status
		_ = c.Get(context.Background(), "/v1/status", nil, &st)
		return st
	}
	wait := func(sha string) {
		deadline := time.Now().Add(2 * time.Minute)
		for status().Converged != sha {
			if time.Now().After(deadline) {
				b.Fatalf("no convergence to %s in 2 minutes", sha[:7])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(sha)
	var lat []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		start := time.Now()
		sha := repo.commitLocal(fmt.Sprintf("v%d", i), files(fmt.Sprintf("v%d", i)))
		wait(sha)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(rssKiB(n.cmd.Process.Pid))/1024, "daemon-rss-MiB")
}

func rssKiB(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
