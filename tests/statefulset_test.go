package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const dbHeadless = `apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080}]
`

// db0LoadBalancer reaches db-0 alone, on the nodes that run it (externalTrafficPolicy Local).
const db0LoadBalancer = `apiVersion: v1
kind: Service
metadata: {name: db0}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {statefulset.kubernetes.io/pod-name: db-0}
  ports: [{name: http, port: 8082, targetPort: http}]
`

// dbStatefulSet is a StatefulSet of three pods, each with a claim, made and rolled one at a time.
func dbStatefulSet(version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: localhost/e2e/app:v1
          args: ["serve", "8080"]
          env: [{name: VERSION, value: "%s"}]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 1
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 16Mi}}
`, version)
}

// stepStatefulSet runs a StatefulSet with claims across the nodes: each pod's data survives a
// rolling update (the replaced pod keeps its name, its claim and its node) and the loss of its
// node (the pod is not made again elsewhere; the node comes back with it); the pods resolve by
// name through the headless Service, and a LoadBalancer with externalTrafficPolicy Local reaches
// a pod only through its own node; once the set leaves git its volumes are deleted.
func stepStatefulSet(t *testing.T, c *lanCluster) {
	n1 := c.nodes[0]
	sha := c.repo.commit("db", map[string]string{"db.yaml": dbStatefulSet("1"), "db-svc.yaml": dbHeadless})
	c.waitAllConverged(t, sha, 3*time.Minute)
	before := dbPods(t, n1)
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		p, ok := before[name]
		if !ok || !p.Ready {
			t.Fatalf("pods %+v, want db-0, db-1 and db-2 ready", before)
		}
		if _, err := n1.exec(name, "/app", "write", "/data/id", "data of "+name); err != nil {
			t.Fatal(err)
		}
	}
	var out string
	waitUntil(t, "db-1.db resolving in db-0", 30*time.Second, func() bool {
		o, err := n1.exec("db-0", "/app", "lookup", "db-1.db")
		out = strings.TrimSpace(o)
		return err == nil && out == before["db-1"].IP
	})

	checkData := func(t *testing.T, what string) {
		t.Helper()
		now := dbPods(t, n1)
		for name, p := range before {
			if now[name].Node != p.Node {
				t.Errorf("%s: %s runs on %s, was on %s", what, name, now[name].Node, p.Node)
			}
			got, err := n1.exec(name, "/app", "cat", "/data/id")
			if err != nil || got != "data of "+name {
				t.Errorf("%s: %s reads %q, %v; want its own data", what, name, got, err)
			}
		}
	}

	// A rolling update replaces every pod, from db-2 down, each on its claim's node.
	sha = c.repo.commit("db v2", map[string]string{"db.yaml": dbStatefulSet("2")})
	c.waitAllConverged(t, sha, 3*time.Minute)
	checkData(t, "after the rolling update")

	// A LoadBalancer with externalTrafficPolicy Local for db-0 alone: listed, and answering, on
	// db-0's node only.
	sha = c.repo.commit("db0 load balancer", map[string]string{"db0-lb.yaml": db0LoadBalancer})
	c.waitAllConverged(t, sha, 2*time.Minute)
	home := c.node(t, before["db-0"].Node)
	waitUntil(t, "db0's EXTERNAL-IP "+home.addr, 30*time.Second, func() bool {
		out, err := n1.shoal("get", "services")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); err == nil && len(f) >= 4 && f[0] == "db0" {
				return f[3] == home.addr
			}
		}
		return false
	})
	waitUntil(t, "db-0 answering on "+home.addr+":8082", 30*time.Second, func() bool {
		o, err := c.getFromLAN("http://" + home.addr + ":8082/")
		return err == nil && strings.Contains(o, "from db-0")
	})
	for _, n := range c.nodes {
		if n == home {
			continue
		}
		if o, err := c.getFromLAN("http://" + n.addr + ":8082/"); err == nil {
			t.Errorf("%s, which runs no db-0, answered on port 8082: %q", n.name, o)
		}
	}
	sha = c.repo.commit("no db0 load balancer", map[string]string{"db0-lb.yaml": ""})
	c.waitAllConverged(t, sha, 2*time.Minute)

	// The node of a pod is lost (its daemon stops answering): the pod is not made anywhere else,
	// whatever the wait; the node comes back with it and its data.
	st := n1.status()
	var lost *lanNode
	var lostPod string
	for _, name := range []string{"db-2", "db-1", "db-0"} {
		if n := c.node(t, before[name].Node); n != n1 && n.name != st.Master {
			lost, lostPod = n, name
			break
		}
	}
	if lost == nil {
		t.Fatalf("every db pod is on node 1 or the master (%s): %+v", st.Master, before)
	}
	t.Logf("pausing %s, which runs %s", lost.name, lostPod)
	lost.pause()
	waitUntil(t, lost.name+" NotReady", time.Minute, func() bool {
		for _, n := range n1.status().Nodes {
			if n.Name == lost.name {
				return !n.Ready
			}
		}
		return false
	})
	deadline := time.Now().Add(20 * time.Second) // well past the node-lost grace
	for time.Now().Before(deadline) {
		if p := dbPods(t, n1)[lostPod]; p.Node != lost.name {
			lost.resume()
			t.Fatalf("%s was made again on %q while its node %s was lost", lostPod, p.Node, lost.name)
		}
		time.Sleep(time.Second)
	}
	lost.resume()
	c.waitAllConverged(t, sha, 3*time.Minute)
	waitUntil(t, "every db pod ready", time.Minute, func() bool {
		now := dbPods(t, n1)
		return now["db-0"].Ready && now["db-1"].Ready && now["db-2"].Ready
	})
	checkData(t, "after the node came back")

	// Out of git, with whenDeleted: Delete: the pods go, then their volumes.
	sha = c.repo.commit("no db", map[string]string{"db.yaml": "", "db-svc.yaml": ""})
	c.waitAllConverged(t, sha, 2*time.Minute)
	for _, n := range c.nodes {
		waitUntil(t, "the db volumes deleted on "+n.name, time.Minute, func() bool {
			entries, err := os.ReadDir(filepath.Join(n.dataDir, "volumes"))
			return (err == nil || os.IsNotExist(err)) && len(entries) == 0
		})
	}
}

// dbPods returns the db StatefulSet's pods by name.
func dbPods(t *testing.T, n *lanNode) map[string]lanPod {
	t.Helper()
	pods, err := n.lanPods()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]lanPod{}
	for _, p := range pods {
		if strings.HasPrefix(p.Name, "db-") {
			out[p.Name] = p
		}
	}
	return out
}
