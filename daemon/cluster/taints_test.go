package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// addNodeRecord runs another node's agent, registering rec, until the test ends.
func (c *testCluster) addNodeRecord(name string, rec NodeRecord) {
	ctx, cancel := context.WithCancel(c.ctx)
	rt, err := lifecycle.New(lifecycle.Config{Driver: fake.New(fake.TestAppImage("registry.local/app:v1"))})
	if err != nil {
		c.t.Fatal(err)
	}
	agent := NewAgent(AgentConfig{Node: name, Store: c.st, Runtime: rt, TTL: time.Second, Record: rec})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = agent.Run(ctx)
	}()
	c.t.Cleanup(func() {
		cancel()
		wg.Wait()
		rt.Close()
	})
}

func tolerantYAML(name string, replicas int, extra string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
%[3]s      containers:
        - name: app
          image: registry.local/app:v1
          args: ["serve", "8080"]
`, name, replicas, extra)
}

// TestNodeTaints: the master schedules by the taints nodes register and evicts the pods a
// NoExecute taint no longer tolerates.
func TestNodeTaints(t *testing.T) {
	c := newTestCluster(t)
	added := time.Now()
	c.addNodeRecord("n2", NodeRecord{Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}, Taints: []NodeTaint{
		{Taint: manifests.Taint{Key: "dedicated", Value: "db", Effect: manifests.TaintEffectNoSchedule}},
		{Taint: manifests.Taint{Key: "maintenance", Effect: manifests.TaintEffectNoExecute}, TimeAdded: added},
	}})
	c.waitFor("two nodes", func(s *Snapshot) bool { return len(s.Nodes) == 2 })

	// web does not tolerate n2's taints; db tolerates them, the NoExecute one for 2 s.
	one := c.git.commit("", "web and db", map[string]string{
		"web.yaml": deploymentYAML("web", 3, "registry.local/app:v1"),
		"db.yaml": tolerantYAML("db", 1, `      nodeSelector: {kubernetes.io/hostname: n2}
      tolerations:
      - {key: dedicated, operator: Exists}
      - {key: maintenance, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
`),
	})
	c.push(one)
	s := c.waitFor("web on n1, db on n2", func(s *Snapshot) bool {
		web, db := 0, 0
		for _, p := range s.Pods() {
			switch {
			case strings.HasPrefix(p.Pod.Name, "web-") && p.Node == "n1":
				web++
			case strings.HasPrefix(p.Pod.Name, "db-") && p.Node == "n2":
				db++
			}
		}
		return web == 3 && db >= 1
	})
	for _, p := range s.Pods() {
		if strings.HasPrefix(p.Pod.Name, "web-") && p.Node != "n1" {
			t.Errorf("web pod %s on %s, which has taints it does not tolerate", p.Pod.Name, p.Node)
		}
	}
	c.waitFor("db evicted after its tolerationSeconds", func(*Snapshot) bool {
		evs, err := c.backend.Events(context.Background())
		if err != nil {
			return false
		}
		for _, e := range evs {
			if e.Reason == "TaintManagerEviction" && strings.Contains(e.Message, "{maintenance: }") {
				return true
			}
		}
		return false
	})
	if time.Since(added) < 2*time.Second {
		t.Errorf("db evicted %s after the taint came, before its 2 s", time.Since(added))
	}
}

// TestCordonToleration: a pod that tolerates node.kubernetes.io/unschedulable goes to a cordoned
// node, not to a draining one.
func TestCordonToleration(t *testing.T) {
	c := newTestCluster(t)
	ctx := context.Background()
	c.waitFor("the node", func(s *Snapshot) bool { return len(s.Nodes) == 1 })
	if err := c.backend.Cordon(ctx, "n1", true, false); err != nil {
		t.Fatal(err)
	}
	one := c.git.commit("", "agent", map[string]string{"agent.yaml": tolerantYAML("agent", 1, `      tolerations:
      - {key: node.kubernetes.io/unschedulable, operator: Exists, effect: NoSchedule}
`)})
	c.push(one)
	c.waitFor("the tolerant pod on the cordoned node", func(s *Snapshot) bool { return s.Converged == one })
	s, err := c.backend.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := s.NodeList(Filter{Selector: manifests.Everything()})
	if err != nil || len(nodes.Items) != 1 || !strings.Contains(fmt.Sprint(nodes.Items[0]), "node.kubernetes.io/unschedulable") {
		t.Errorf("the cordoned node does not show its taint: %+v, %v", nodes.Items, err)
	}
	if err := c.backend.Cordon(ctx, "n1", true, true); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the pod drained and pending", func(s *Snapshot) bool {
		for _, p := range s.Pods() {
			if p.Node == "n1" {
				return false
			}
		}
		return s.Status().Pending == 1
	})
}
