package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
)

// stepLogsAndExecFromAnyNode checks that one node's CLI reaches the pods of every node: the
// daemon forwards logs and exec to the node that runs the pod over the cluster's mutual TLS.
func stepLogsAndExecFromAnyNode(t *testing.T, c *lanCluster) {
	n1 := c.nodes[0]
	pods, err := n1.lanPods()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes[1:] {
		p := firstOn(pods, n.name)
		if p.Name == "" {
			t.Fatalf("no pod on %s", n.name)
		}
		out, err := n1.shoal("logs", p.Name)
		if err != nil {
			t.Errorf("logs of %s (on %s) through %s: %v", p.Name, n.name, n1.name, err)
		}
		out2, err := n1.exec(p.Name, "/app", "get", "http://127.0.0.1:8080/")
		if err != nil || !strings.Contains(out2, "from "+p.Name) {
			t.Errorf("exec in %s (on %s) through %s: %v: %q", p.Name, n.name, n1.name, err, out2)
		}
		t.Logf("%s on %s through %s: %d bytes of log, exec answered %q", p.Name, n.name, n1.name, len(out), strings.TrimSpace(out2))
	}
}

// stepStoreMemberLost kills a node that runs one of the three store members (not the master):
// the two others keep the store and the cluster working — a new commit is applied, the lost
// node's pods run elsewhere and the commit converges. The lost node is then removed for good
// (`shoal node remove`, which takes its member out of the store), reset, and joins again with an
// empty data dir as a store member.
func stepStoreMemberLost(t *testing.T, c *lanCluster) {
	n1 := c.nodes[0]
	st := n1.status()
	for _, ns := range st.Nodes {
		if ns.Store != "member" {
			t.Errorf("node %s: store %q, want member (the first three nodes run the store)", ns.Name, ns.Store)
		}
	}
	var victim *lanNode
	for _, n := range c.nodes[1:] {
		if n.name != st.Master {
			victim = n
			break
		}
	}
	t.Logf("killing %s, a store member; %s is master", victim.name, st.Master)
	killed := time.Now()
	victim.kill()

	// The poller is pinned to node 3 (nodeSelector): it goes, so that the commit can converge
	// whichever node is lost.
	sha := c.repo.commit("web: 8 replicas", map[string]string{"web.yaml": deployment("web", 8, "v1", ""), "poller.yaml": ""})
	waitUntil(t, "the commit applied with one store member lost", time.Minute, func() bool {
		st := n1.status()
		return st.Applied != nil && st.Applied.SHA == sha
	})
	t.Logf("commit applied %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	waitUntil(t, "the lost node's pods elsewhere and the commit converged", 2*time.Minute, func() bool {
		pods, err := n1.lanPods()
		if err != nil {
			return false
		}
		web := podsByNode(pods, "web-")
		return web[victim.name] == 0 && sum(web) == 8 && n1.status().Converged == sha
	})
	t.Logf("converged on the two remaining nodes %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	for _, ns := range n1.status().Nodes {
		if ns.Name == victim.name && ns.Ready {
			t.Errorf("the killed node %s shows Ready", victim.name)
		}
	}

	// Gone for good: remove it, reset it, and let it join again as a new node.
	if out, err := n1.shoal("node", "remove", victim.name); err != nil {
		t.Fatalf("node remove %s: %v\n%s", victim.name, err, out)
	}
	for _, ns := range n1.status().Nodes {
		if ns.Name == victim.name {
			t.Errorf("status shows the removed node: %+v", ns)
		}
	}
	if out, err := victim.reset(); err != nil {
		t.Fatalf("node reset %s: %v\n%s", victim.name, err, out)
	}
	victim.prepareEmpty(t)
	victim.start(t)
	victim.waitAPI(t)
	waitUntil(t, victim.name+" back as a store member", 2*time.Minute, func() bool {
		for _, ns := range n1.status().Nodes {
			if ns.Name == victim.name {
				return ns.Ready && ns.Store == "member"
			}
		}
		return false
	})
	c.waitAllConverged(t, sha, 2*time.Minute)
}

// prepareEmpty makes again what addNode made for a node whose data `shoal node reset` removed:
// the example app's image where the node imports images at start, and the cgroup its load
// balancer attaches to.
func (n *lanNode) prepareEmpty(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll(n.lbCgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	imports := filepath.Join(n.dataDir, "images", "import")
	if err := os.MkdirAll(imports, 0o700); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(n.c.image)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(imports, "app.tar"), img, 0o600); err != nil {
		t.Fatal(err)
	}
}

// stepPausedMasterIsFenced freezes the master with SIGSTOP past its lease. Another node takes
// over and applies a new commit while the old master sleeps; when the old master wakes, its
// session is gone, so it steps down without a write (the store fences its term), and no pod is
// placed or run twice.
func stepPausedMasterIsFenced(t *testing.T, c *lanCluster) {
	master := c.node(t, c.nodes[0].status().Master)
	obs := c.nodes[0] // the node the step watches through: not the master
	if obs == master {
		obs = c.nodes[1]
	}
	// With every node up, the master keeps the store's leadership off its own node, so that
	// losing it costs no store election.
	var st cluster.Status
	waitUntil(t, "the store led by another node than the master", time.Minute, func() bool {
		st = obs.status()
		return st.StoreLeader != "" && st.StoreLeader != master.name
	})
	mark := master.logLen()
	t.Logf("pausing the master %s (the store's leader is %s)", master.name, st.StoreLeader)
	paused := time.Now()
	master.pause()
	var next string
	waitUntil(t, "another master", 30*time.Second, func() bool {
		next = obs.status().Master
		return next != "" && next != master.name
	})
	t.Logf("%s became master %v after the pause", next, time.Since(paused).Round(100*time.Millisecond))
	sha := c.repo.commit("extra: 2 replicas", map[string]string{"extra.yaml": deployment("extra", 2, "v1", "")})
	waitUntil(t, "the commit applied by the new master", time.Minute, func() bool {
		st := obs.status()
		return st.Applied != nil && st.Applied.SHA == sha
	})
	master.resume()
	t.Logf("resumed %s after %v", master.name, time.Since(paused).Round(100*time.Millisecond))
	waitUntil(t, "the old master stepping down", 30*time.Second, func() bool {
		return strings.Contains(master.logSince(mark), `msg="master stopped"`)
	})
	if m := obs.status().Master; m != next {
		t.Errorf("master after the old one woke: %q, want %s", m, next)
	}
	c.waitAllConverged(t, sha, 2*time.Minute)
	for _, n := range c.nodes {
		c.waitOnlyAssignedRun(t, n)
	}
	pods, err := obs.lanPods()
	if err != nil {
		t.Fatal(err)
	}
	if got := countLAN(pods, "extra-"); got != 2 {
		t.Errorf("%d extra pods, want 2", got)
	}
}

// logLen returns the length of the node's daemon log so far.
func (n *lanNode) logLen() int {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return n.log.Len()
}

// logSince returns the node's daemon log from offset on.
func (n *lanNode) logSince(offset int) string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return n.log.String()[offset:]
}
