package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/volumes"

	"github.com/shoal-dev/shoal/daemon/revision"
)

// fakeGit is a repository in memory: commits with parents and trees.
type fakeGit struct {
	mu      sync.Mutex
	commits map[string]fakeCommit
	n       int
}

type fakeCommit struct {
	parent string
	files  fstest.MapFS
	msg    string
}

func (g *fakeGit) commit(parent, msg string, files map[string]string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	sha := fmt.Sprintf("%040d", g.n)
	fsys := fstest.MapFS{}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	g.commits[sha] = fakeCommit{parent: parent, files: fsys, msg: msg}
	return sha
}

func (g *fakeGit) RepoTree(_ context.Context, sha string) (fs.FS, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.commits[sha]
	if !ok {
		return nil, "", errors.New("no such commit")
	}
	return c.files, ".", nil
}

func (g *fakeGit) Commit(_ context.Context, sha string) (revision.Commit, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.commits[sha]
	if !ok {
		return revision.Commit{}, errors.New("no such commit")
	}
	return revision.Commit{SHA: sha, Author: "tester", Message: c.msg, Time: time.Now()}, nil
}

func (g *fakeGit) IsAncestor(_ context.Context, a, d string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := d; c != ""; c = g.commits[c].parent {
		if c == a {
			return true, nil
		}
	}
	return false, nil
}

func (g *fakeGit) Verify(context.Context, string, string, string) error { return nil }

func deploymentYAML(name string, replicas int, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
        - name: app
          image: %[3]s
          args: ["serve", "8080"]
`, name, replicas, image)
}

// testMetricsInterval is how often the test clusters' nodes measure their pods.
const testMetricsInterval = 200 * time.Millisecond

// testCluster runs a master and an agent over an embedded etcd and the fake runtime.
type testCluster struct {
	t       *testing.T
	ctx     context.Context
	st      *store.Client
	git     *fakeGit
	master  *Master
	backend *Backend
	driver  *fake.Driver // n1's: SetUsage drives what n1 measures of its pods
	volumes *volumes.Dir // n1's claim volumes
	keys    *Keys        // n1's, with the CA key; nil: the cluster keeps its Secrets unencrypted
	// stopMaster stops n1's master (its campaign and its passes); the agent keeps running.
	stopMaster context.CancelFunc
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func newTestCluster(t *testing.T, opts ...func(*MasterConfig)) *testCluster {
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := store.StartEmbedded(ctx, store.EmbedConfig{Dir: t.TempDir(), Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Connect(ctx, store.Config{Endpoints: emb.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	driver := fake.New(fake.TestAppImage("registry.local/app:v1"), fake.TestAppImage("registry.local/app:v2"))
	rt, err := lifecycle.New(lifecycle.Config{Driver: driver, Backoff: lifecycle.Backoff{Base: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, ctx: ctx, st: st, git: &fakeGit{commits: map[string]fakeCommit{}}, cancel: cancel, driver: driver,
		volumes: &volumes.Dir{Root: t.TempDir()}}
	mcfg := MasterConfig{Node: "n1", Store: st, Git: c.git}
	for _, o := range opts {
		o(&mcfg)
	}
	c.master = NewMaster(mcfg)
	// With Keys (withKeys), n1 is a server: it holds the CA key and publishes its certificate.
	c.keys = mcfg.Keys
	agent := NewAgent(AgentConfig{Node: "n1", Store: st, Runtime: rt, TTL: 2 * time.Second, Volumes: c.volumes,
		MetricsInterval: testMetricsInterval, Record: NodeRecord{Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}}, Keys: mcfg.Keys})
	c.backend = &Backend{Node: "n1", Store: st, Runtime: rt, Keys: mcfg.Keys}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		_ = agent.Run(ctx)
	}()
	mctx, stopMaster := context.WithCancel(ctx)
	c.stopMaster = stopMaster
	go func() {
		defer c.wg.Done()
		for mctx.Err() == nil {
			lead, err := st.Campaign(mctx, "/shoal/master", "n1", 2*time.Second)
			if err != nil {
				return
			}
			_ = c.master.Run(mctx, lead)
			// As the daemon does: hand the leadership over at once.
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = lead.Resign(rctx)
			rcancel()
		}
	}()
	t.Cleanup(func() {
		cancel()
		c.wg.Wait()
		rt.Close()
		st.Close()
		emb.Close()
	})
	return c
}

func (c *testCluster) push(sha string) { c.master.SetHead(revision.Head{SHA: sha, SeenAt: time.Now()}) }

func (c *testCluster) waitFor(what string, cond func(s *Snapshot) bool) *Snapshot {
	c.t.Helper()
	return c.waitForWithin(what, 30*time.Second, cond)
}

func (c *testCluster) waitForWithin(what string, timeout time.Duration, cond func(s *Snapshot) bool) *Snapshot {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var s *Snapshot
	for time.Now().Before(deadline) {
		var err error
		if s, err = c.backend.Snapshot(context.Background()); err == nil && cond(s) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("timed out waiting for %s; status %+v", what, s.Status())
	return nil
}

func TestMasterAndAgentConverge(t *testing.T) {
	c := newTestCluster(t)
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n"
	one := c.git.commit("", "web: 2", map[string]string{"web.yaml": deploymentYAML("web", 2, "registry.local/app:v1"), "svc.yaml": svc})
	c.push(one)
	c.waitFor("convergence", func(s *Snapshot) bool { return s.Converged == one })
	s := c.waitFor("service endpoints", func(s *Snapshot) bool { return len(s.Services["default/web"].Endpoints) == 2 })
	if rec := s.Services["default/web"]; rec.ClusterIP.String() != "10.96.0.1" || rec.Endpoints[0].Ports[""] != 8080 {
		t.Errorf("service record %+v, want 10.96.0.1 with 2 endpoints on port 8080", rec)
	}
	if pods := s.Pods(); len(pods) != 2 || pods[0].Node != "n1" {
		t.Fatalf("pods %+v, want 2 on n1", pods)
	}
	st := s.Status()
	if st.Master != "n1" || len(st.Deployments) != 1 || st.Deployments[0].Ready != 2 || !st.Deployments[0].Complete {
		t.Errorf("status %+v", st)
	}

	// A bad commit is rejected whole.
	bad := c.git.commit(one, "bad", map[string]string{"web.yaml": deploymentYAML("web", 5, "registry.local/app:v1"), "svc.yaml": svc, "x.yaml": "kind: Nope\n"})
	c.push(bad)
	s = c.waitFor("rejection", func(s *Snapshot) bool { r := s.Status().LastRejected; return r != nil && r.SHA == bad })
	if s.Applied.SHA != one || len(s.Pods()) != 2 {
		t.Errorf("a rejected commit changed the cluster: applied %s, %d pods", s.Applied.SHA, len(s.Pods()))
	}
	if r := s.Status().LastRejected; !strings.HasPrefix(r.Reasons[0], "x.yaml:1: ") {
		t.Errorf("reasons %q, want file:line", r.Reasons)
	}

	// A new version rolls out; then scale down.
	two := c.git.commit(bad, "web: v2", map[string]string{"web.yaml": deploymentYAML("web", 2, "registry.local/app:v2")})
	c.push(two)
	s = c.waitFor("v2", func(s *Snapshot) bool { return s.Converged == two })
	// Only the applied commit's objects stay in the store.
	desired, _, err := store.List[json.RawMessage](context.Background(), c.master.cfg.Store, desiredPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range desired {
		if !strings.HasPrefix(kv.Key, desiredPrefix+two+"/") {
			t.Errorf("desired object %s left of an old commit", kv.Key)
		}
	}
	for _, p := range s.Pods() {
		if p.Pod.Spec.Containers[0].Image != "registry.local/app:v2" {
			t.Errorf("pod %s runs %s after the rollout", p.Pod.Name, p.Pod.Spec.Containers[0].Image)
		}
	}
	// An RBAC object has no effect: the commit is applied, with a warning kept in its record.
	role := "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: reader}\nrules: [{apiGroups: [\"\"], resources: [pods], verbs: [get]}]\n"
	three := c.git.commit(two, "web: 1", map[string]string{"web.yaml": deploymentYAML("web", 1, "registry.local/app:v2"), "rbac.yaml": role})
	c.push(three)
	s = c.waitFor("scale down", func(s *Snapshot) bool { return s.Converged == three && len(s.Pods()) == 1 })
	if a := s.Status().Applied; a == nil || len(a.Warnings) != 1 || !strings.HasPrefix(a.Warnings[0], `rbac.yaml:1: warning: Role "reader" has no effect in Shoal`) {
		t.Errorf("applied commit %+v, want the Role's warning", a)
	}

	// A commit that does not descend from the applied one is refused.
	other := c.git.commit(one, "rewritten history", map[string]string{"web.yaml": deploymentYAML("web", 3, "registry.local/app:v1")})
	c.push(other)
	s = c.waitFor("refusal", func(s *Snapshot) bool { r := s.Status().LastRejected; return r != nil && r.SHA == other })
	if !strings.Contains(s.Status().LastRejected.Reasons[0], "does not descend") {
		t.Errorf("reason %q", s.Status().LastRejected.Reasons[0])
	}

	// Removing the Deployment prunes its pods.
	empty := c.git.commit(three, "remove web", map[string]string{})
	c.push(empty)
	c.waitFor("pruning", func(s *Snapshot) bool { return s.Applied.SHA == empty && len(s.Pods()) == 0 })

	evs, err := c.backend.Events(context.Background())
	if err != nil || len(evs) == 0 {
		t.Errorf("events: %v, %d", err, len(evs))
	}
}

func TestCordonAndDrain(t *testing.T) {
	c := newTestCluster(t)
	ctx := context.Background()
	one := c.git.commit("", "web: 2", map[string]string{"web.yaml": deploymentYAML("web", 2, "registry.local/app:v1")})
	c.push(one)
	c.waitFor("convergence", func(s *Snapshot) bool { return s.Converged == one })

	if err := c.backend.Cordon(ctx, "n1", true, false); err != nil {
		t.Fatal(err)
	}
	if err := c.backend.Cordon(ctx, "nope", true, false); err == nil {
		t.Error("cordon of an unknown node succeeded")
	}
	three := c.git.commit(one, "web: 3", map[string]string{"web.yaml": deploymentYAML("web", 3, "registry.local/app:v1")})
	c.push(three)
	s := c.waitFor("a pending pod", func(s *Snapshot) bool { return s.Status().Pending == 1 })
	if !s.Status().Nodes[0].Unschedulable {
		t.Error("status does not show the cordoned node as unschedulable")
	}
	running := 0
	for _, p := range s.Pods() {
		if p.Node == "n1" {
			running++
		}
	}
	if running != 2 {
		t.Errorf("%d pods on the cordoned node, want the 2 that were there", running)
	}

	if err := c.backend.Cordon(ctx, "n1", false, false); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the pending pod placed after uncordon", func(s *Snapshot) bool { return s.Converged == three && s.Status().Pending == 0 })

	// Drain: the Deployment's pods leave the node; with no other node they wait as Pending.
	if err := c.backend.Cordon(ctx, "n1", true, true); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the node drained", func(s *Snapshot) bool {
		for _, p := range s.Pods() {
			if p.Node == "n1" {
				return false
			}
		}
		return s.Status().Pending == 3
	})
}

// addNode runs another node's agent over its own fake runtime until the returned stop is called.
func (c *testCluster) addNode(name string) (stop func()) {
	ctx, cancel := context.WithCancel(c.ctx)
	driver := fake.New(fake.TestAppImage("registry.local/app:v1"))
	rt, err := lifecycle.New(lifecycle.Config{Driver: driver})
	if err != nil {
		c.t.Fatal(err)
	}
	var keys *Keys
	if c.keys != nil {
		keys = agentKeys(c.t, c.keys, name)
	}
	agent := NewAgent(AgentConfig{Node: name, Store: c.st, Runtime: rt, TTL: time.Second, MetricsInterval: testMetricsInterval,
		Record: NodeRecord{Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}}, Keys: keys})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			rt.Close()
		})
	}
	c.t.Cleanup(stop)
	return stop
}

// TestRemoveNode: a stopped node shows NotReady and keeps its pods through the node-lost grace;
// removing it moves them at once. A running node cannot be removed.
func TestRemoveNode(t *testing.T) {
	c := newTestCluster(t, func(m *MasterConfig) { m.NodeLostGrace = time.Hour })
	ctx := context.Background()
	stopN2 := c.addNode("n2")
	c.waitFor("two nodes", func(s *Snapshot) bool { return len(s.Nodes) == 2 })
	one := c.git.commit("", "web: 4", map[string]string{"web.yaml": deploymentYAML("web", 4, "registry.local/app:v1")})
	c.push(one)
	c.waitFor("convergence", func(s *Snapshot) bool { return s.Converged == one })
	onN2 := func(s *Snapshot) int {
		n := 0
		for _, p := range s.Pods() {
			if p.Node == "n2" {
				n++
			}
		}
		return n
	}
	if err := c.backend.RemoveNode(ctx, "n2"); !errors.Is(err, ErrNodeRunning) {
		t.Fatalf("remove a running node: %v", err)
	}
	s := c.waitFor("pods on n2", func(s *Snapshot) bool { return onN2(s) > 0 })
	had := onN2(s)

	stopN2()
	c.waitFor("n2 NotReady", func(s *Snapshot) bool {
		for _, n := range s.Status().Nodes {
			if n.Name == "n2" && !n.Ready {
				return true
			}
		}
		return false
	})
	// The master finds n2 lost and keeps its pods there through the grace.
	nodeEvent := func(reason string) bool {
		evs, err := c.backend.Events(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(evs, func(e Event) bool { return e.Reason == reason && e.Object == "Node n2" })
	}
	for deadline := time.Now().Add(30 * time.Second); !nodeEvent("NodeNotReady"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the NodeNotReady event of n2")
		}
	}
	s, err := c.backend.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := onN2(s); got != had {
		t.Errorf("%d pods on n2 within the grace, want the %d it had", got, had)
	}
	if err := c.backend.RemoveNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	s = c.waitFor("n2's pods moved", func(s *Snapshot) bool { return onN2(s) == 0 && s.Status().Pending == 0 && len(s.Pods()) == 4 })
	for _, n := range s.Status().Nodes {
		if n.Name == "n2" {
			t.Errorf("status still shows the removed node: %+v", n)
		}
	}
	if err := c.backend.RemoveNode(ctx, "n2"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("remove it again: %v", err)
	}
	if !nodeEvent("RemovingNode") {
		t.Error("no RemovingNode event for n2")
	}
}
