package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// usageBackend serves two nodes running three pods, with the nodes' usage samples when
// measured is set.
type usageBackend struct {
	commitsBackend
	measured bool
}

func (b usageBackend) Snapshot(context.Context) (*cluster.Snapshot, error) {
	now := time.Now()
	pod := func(uid, ns, name, node string) (cluster.Placement, cluster.PodStatusRecord) {
		p := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Namespace: ns, Name: name}}
		return cluster.Placement{Spec: runtime.PodSpec{UID: uid, Pod: p}, Node: node, Created: now},
			cluster.PodStatusRecord{UID: uid, Status: manifests.PodStatus{Phase: manifests.PodRunning}}
	}
	s := &cluster.Snapshot{Now: now, Statuses: map[string]cluster.PodStatusRecord{},
		Nodes: []cluster.NodeRecord{{Name: "n1", Allocatable: cluster.Resources{MilliCPU: 2000, Memory: 4 << 30}},
			{Name: "n2", Allocatable: cluster.Resources{MilliCPU: 4000, Memory: 8 << 30}}}}
	for _, p := range [][4]string{{"u1", "default", "web-1", "n1"}, {"u2", "default", "web-2", "n2"}, {"u3", "shop", "db-0", "n2"}} {
		pl, st := pod(p[0], p[1], p[2], p[3])
		s.Placements = append(s.Placements, pl)
		s.Statuses[p[0]] = st
	}
	if !b.measured {
		return s, nil
	}
	ctr := func(name string, milli, mem int64) cluster.ContainerMetrics {
		return cluster.ContainerMetrics{Name: name, MilliCPU: milli, Memory: mem}
	}
	s.Metrics = map[string]cluster.NodeMetrics{
		"n1": {Node: "n1", Timestamp: now, Window: 15 * time.Second, MilliCPU: 250, Memory: 120 << 20, Pods: []cluster.PodMetrics{
			{UID: "u1", Namespace: "default", Name: "web-1", Containers: []cluster.ContainerMetrics{ctr("app", 200, 100<<20), ctr("proxy", 50, 20<<20)}}}},
		"n2": {Node: "n2", Timestamp: now, Window: 15 * time.Second, MilliCPU: 1500, Memory: 1 << 30, Pods: []cluster.PodMetrics{
			{UID: "u2", Namespace: "default", Name: "web-2", Containers: []cluster.ContainerMetrics{ctr("app", 1000, 512<<20)}},
			{UID: "u3", Namespace: "shop", Name: "db-0", Containers: []cluster.ContainerMetrics{ctr("db", 500, 512<<20)}}}},
	}
	return s, nil
}

func serveUsage(t *testing.T, measured bool) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.NewHandler(api.Config{Backend: usageBackend{measured: measured}})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestTopTables(t *testing.T) {
	sock := serveUsage(t, true)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nodes", []string{"top", "nodes"}, `NAME   CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%
n1     250m         12%    120Mi           2%
n2     1500m        37%    1024Mi          12%
`},
		{"nodes by memory", []string{"top", "node", "--sort-by", "memory"}, `NAME   CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%
n2     1500m        37%    1024Mi          12%
n1     250m         12%    120Mi           2%
`},
		{"one node", []string{"top", "nodes", "n2"}, `NAME   CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%
n2     1500m        37%    1024Mi          12%
`},
		{"pods", []string{"top", "pods"}, `NAME    CPU(cores)   MEMORY(bytes)
web-1   250m         120Mi
web-2   1000m        512Mi
`},
		{"pods of a namespace", []string{"top", "pods", "-n", "shop"}, `NAME   CPU(cores)   MEMORY(bytes)
db-0   500m         512Mi
`},
		{"all pods by cpu", []string{"top", "pods", "-A", "--sort-by", "cpu"}, `NAMESPACE   NAME    CPU(cores)   MEMORY(bytes)
default     web-2   1000m        512Mi
shop        db-0    500m         512Mi
default     web-1   250m         120Mi
`},
		{"containers", []string{"top", "pods", "web-1", "--containers"}, `POD     NAME    CPU(cores)   MEMORY(bytes)
web-1   app     200m         100Mi
web-1   proxy   50m          20Mi
`},
		{"containers of all namespaces", []string{"top", "po", "-A", "--containers"}, `NAMESPACE   POD     NAME    CPU(cores)   MEMORY(bytes)
default     web-1   app     200m         100Mi
default     web-1   proxy   50m          20Mi
default     web-2   app     1000m        512Mi
shop        db-0    db      500m         512Mi
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append(tt.args, "--socket", sock)...)
			if code != ExitOK || out != tt.want {
				t.Errorf("shoal %s: exit %d, stderr %q, out:\n%s\nwant:\n%s", strings.Join(tt.args, " "), code, errOut, out, tt.want)
			}
		})
	}
}

func TestTopJSON(t *testing.T) {
	sock := serveUsage(t, true)
	code, out, errOut := run(t, "top", "nodes", "-o", "json", "--socket", sock)
	var nodes cluster.NodeUsageList
	if code != ExitOK || json.Unmarshal([]byte(out), &nodes) != nil || len(nodes.Items) != 2 || nodes.Items[0].MilliCPU != 250 || nodes.Items[1].MemoryPercent != 12 {
		t.Errorf("top nodes -o json: exit %d, stderr %q, out:\n%s", code, errOut, out)
	}
	code, out, errOut = run(t, "top", "pods", "-A", "-o", "json", "--socket", sock)
	var pods cluster.PodUsageList
	if code != ExitOK || json.Unmarshal([]byte(out), &pods) != nil || len(pods.Items) != 3 || pods.Items[0].Name != "web-1" ||
		pods.Items[0].MilliCPU != 250 || len(pods.Items[0].Containers) != 2 || pods.Items[0].Node != "n1" {
		t.Errorf("top pods -A -o json: exit %d, stderr %q, out:\n%s", code, errOut, out)
	}
}

// Before any sample, `shoal top` says that metrics are not available yet and what to do; a
// namespace without pods has no resources, and unknown names, sort keys and formats are errors.
func TestTopNotAvailable(t *testing.T) {
	sock := serveUsage(t, false)
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"top", "nodes"}, ExitFailure, "error: metrics not available yet"},
		{[]string{"top", "pods"}, ExitFailure, "error: metrics not available yet"},
		{[]string{"top", "pods", "-o", "json"}, ExitFailure, "error: metrics not available yet"},
		{[]string{"top", "pods", "-n", "empty"}, ExitOK, "No resources found in namespace empty"},
		{[]string{"top", "pods", "nope"}, ExitFailure, `pod "nope" not found in namespace "default"`},
		{[]string{"top", "nodes", "nope"}, ExitFailure, `node "nope" not found`},
		{[]string{"top", "pods", "--sort-by", "name"}, ExitUsage, `--sort-by "name": use cpu or memory`},
		{[]string{"top", "nodes", "-o", "yaml"}, ExitUsage, `unknown output format "yaml"`},
		{[]string{"top", "services"}, ExitUsage, `unknown resource "services": use nodes or pods`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := run(t, append(tt.args, "--socket", sock)...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tt.code, tt.stderr)
			}
		})
	}
	if _, _, errOut := run(t, "top", "nodes", "--socket", sock); !strings.Contains(errOut, "wait ~15 s") {
		t.Errorf("stderr %q does not say what to do", errOut)
	}
}
