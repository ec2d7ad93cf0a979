package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
)

const webService = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: http}
`

const webNodePort = `apiVersion: v1
kind: Service
metadata:
  name: web-np
spec:
  type: NodePort
  selector: {app: web}
  ports:
    - name: http
      port: 80
      targetPort: http
      nodePort: 30080
`

const webLoadBalancer = `apiVersion: v1
kind: Service
metadata:
  name: web-lb
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
    - {name: http, port: 8081, targetPort: http}
`

// TestMultiNode runs three nodes, each in its own network namespace with the real pod network,
// against one repository, and follows a cluster through its life: convergence and spreading,
// Services and pod-to-pod traffic across nodes, the loss of the master, a frozen node whose pods
// are replaced and stopped when it comes back, a node cut off the network and healed, and a
// revert, a StatefulSet whose pods keep their data through a rollout and the loss of their node.
// The nodes follow the repository on a git server in its own namespace. The steps share
// the cluster and run in order; the first failure stops the rest.
func TestMultiNode(t *testing.T) {
	needRoot(t)
	c := newLANCluster(t, 3)
	c.repo.commit("start", map[string]string{"README.md": "cluster\n"})
	c.startAll()
	var web []lanPod

	step := func(name string, f func(t *testing.T)) {
		start := time.Now()
		ok := t.Run(name, f)
		t.Logf("%s: ok=%v in %v", name, ok, time.Since(start).Round(100*time.Millisecond))
		if !ok {
			t.FailNow()
		}
	}

	step("ConvergeAndSpread", func(t *testing.T) {
		sha := c.repo.commit("web: 6 replicas", map[string]string{"web.yaml": deployment("web", 6, "v1", ""), "web-svc.yaml": webService})
		c.waitAllConverged(t, sha, 3*time.Minute)
		for _, n := range c.nodes {
			st := n.status()
			if len(st.Nodes) != 3 {
				t.Errorf("status of %s shows %d nodes, want 3", n.name, len(st.Nodes))
			}
		}
		pods, err := c.nodes[0].lanPods()
		if err != nil {
			t.Fatal(err)
		}
		spread := podsByNode(pods, "web-")
		for _, n := range c.nodes {
			if spread[n.name] != 2 {
				t.Errorf("web pods per node %v, want 2 on each", spread)
				break
			}
		}
		for _, p := range pods {
			if strings.HasPrefix(p.Name, "web-") {
				if !strings.HasPrefix(p.IP, "10.244.") {
					t.Errorf("pod %s on %s has address %q, want one in 10.244.0.0/16", p.Name, p.Node, p.IP)
				}
				web = append(web, p)
			}
		}
	})

	step("DaemonSetOnEveryNode", func(t *testing.T) {
		sha := c.repo.commit("agent", map[string]string{"agent.yaml": daemonSet("v1")})
		c.waitAllConverged(t, sha, 2*time.Minute)
		pods, err := c.nodes[0].lanPods()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			if got := podsByNode(pods, "agent-")[n.name]; got != 1 {
				t.Errorf("agent pods per node %v, want 1 on each", podsByNode(pods, "agent-"))
				break
			}
		}
	})

	step("ServiceAcrossNodes", func(t *testing.T) {
		n1 := c.nodes[0]
		vip := ""
		waitUntil(t, "the Service's virtual IP", 30*time.Second, func() bool { vip = n1.serviceIP("web"); return vip != "" })
		for _, n := range c.nodes {
			client := firstOn(web, n.name)
			if client.Name == "" {
				t.Fatalf("no web pod on %s", n.name)
			}
			// Name resolution through the node's DNS server.
			var out string
			waitUntil(t, "web resolving in "+client.Name, 30*time.Second, func() bool {
				o, err := n.exec(client.Name, "/app", "lookup", "web")
				out = strings.TrimSpace(o)
				return err == nil
			})
			if out != vip {
				t.Errorf("lookup web from %s: %q, want the virtual IP %s", client.Name, out, vip)
			}
			// GET through the virtual IP until answers came from pods on more than one node.
			from := map[string]bool{}
			deadline := time.Now().Add(60 * time.Second)
			for tries := 0; len(from) < 2 || tries < 6; tries++ {
				if time.Now().After(deadline) {
					t.Fatalf("from %s through %s: answers came from the pods of %v only", client.Name, vip, keys(from))
				}
				o, err := n.exec(client.Name, "/app", "get", "http://"+vip+"/")
				if err != nil {
					t.Logf("GET %s from %s: %v", vip, client.Name, err)
					time.Sleep(500 * time.Millisecond)
					continue
				}
				for _, p := range web {
					if strings.Contains(o, "from "+p.Name) {
						from[p.Node] = true
					}
				}
			}
			t.Logf("from %s on %s: answers from the pods of nodes %v", client.Name, n.name, keys(from))
		}
	})

	step("PodToPodAcrossNodes", func(t *testing.T) {
		for _, pair := range [][2]int{{0, 1}, {1, 2}, {2, 0}} {
			a, b := c.nodes[pair[0]], c.nodes[pair[1]]
			client, server := firstOn(web, a.name), firstOn(web, b.name)
			var out string
			var err error
			waitUntil(t, fmt.Sprintf("GET from %s to %s", a.name, b.name), 30*time.Second, func() bool {
				out, err = a.exec(client.Name, "/app", "get", "http://"+server.IP+":8080/")
				return err == nil
			})
			if !strings.Contains(out, "from "+server.Name) {
				t.Errorf("GET %s (%s on %s) from %s on %s: %q", server.IP, server.Name, b.name, client.Name, a.name, out)
			}
		}
	})

	step("LogsAndExecFromAnyNode", func(t *testing.T) { stepLogsAndExecFromAnyNode(t, c) })

	step("NodePortFromOtherNodes", func(t *testing.T) {
		// web as a NodePort Service too: a pod on node 1 reaches it on node 2's address.
		sha := c.repo.commit("web: node port", map[string]string{"web-np.yaml": webNodePort})
		c.waitAllConverged(t, sha, 2*time.Minute)
		n1, n2 := c.nodes[0], c.nodes[1]
		client := firstOn(web, n1.name)
		url := "http://" + n2.addr + ":30080/"
		from := map[string]bool{}
		deadline := time.Now().Add(60 * time.Second)
		for tries := 0; len(from) < 2 || tries < 6; tries++ {
			if time.Now().After(deadline) {
				t.Fatalf("GET %s from %s: answers from the pods of %v only", url, client.Name, keys(from))
			}
			o, err := n1.exec(client.Name, "/app", "get", url)
			if err != nil {
				t.Logf("GET %s from %s: %v", url, client.Name, err)
				time.Sleep(500 * time.Millisecond)
				continue
			}
			for _, p := range web {
				if strings.Contains(o, "from "+p.Name) {
					from[p.Node] = true
				}
			}
		}
		t.Logf("GET %s from %s on %s: answers from the pods of nodes %v", url, client.Name, n1.name, keys(from))
	})

	step("LoadBalancerOnEveryNode", func(t *testing.T) { stepLoadBalancerOnEveryNode(t, c, web) })

	step("ServiceWorksWhileTheDaemonIsDown", func(t *testing.T) {
		// A pod on node 3 polls the Service through its virtual IP, over a kept-alive connection and
		// over new ones; node 3's daemon is SIGKILLed for a while. The pinned eBPF programs keep
		// translating: the open connection keeps working and new connections still reach pods.
		n1, n3 := c.nodes[0], c.nodes[2]
		vip := n1.serviceIP("web")
		poller := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: poller
spec:
  selector:
    matchLabels: {app: poller}
  template:
    metadata:
      labels: {app: poller}
    spec:
      nodeSelector: {kubernetes.io/hostname: %s}
      containers:
        - name: app
          image: localhost/e2e/app:v1
          args: ["poll", "http://%s/"]
`, n3.name, vip)
		sha := c.repo.commit("poller on "+n3.name, map[string]string{"poller.yaml": poller})
		c.waitAllConverged(t, sha, 2*time.Minute)
		var pod string
		waitUntil(t, "the poller's pod", 30*time.Second, func() bool {
			pods, err := n1.lanPods()
			for _, p := range pods {
				if strings.HasPrefix(p.Name, "poller-") && p.Node == n3.name {
					pod = p.Name
				}
			}
			return err == nil && pod != ""
		})
		time.Sleep(time.Second)
		n3.kill()
		down := time.Now()
		time.Sleep(3 * time.Second)
		up := time.Now()
		n3.start(t)
		n3.waitAPI(t)
		var logs string
		waitUntil(t, "the poller's logs", 30*time.Second, func() bool {
			out, err := n3.shoal("logs", pod)
			logs = out
			return err == nil
		})
		okWhileDown := map[string]int{}
		var failures []string
		for _, line := range strings.Split(logs, "\n") {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, f[0])
			if err != nil || at.Before(down) || at.After(up) {
				continue
			}
			if f[3] == "ok" {
				okWhileDown[f[1]]++
			} else {
				failures = append(failures, line)
			}
		}
		if okWhileDown["keepalive"] < 5 || okWhileDown["fresh"] < 5 || len(failures) > 0 {
			t.Errorf("while %s's daemon was down: %v requests answered, failures %q", n3.name, okWhileDown, failures)
		}
		t.Logf("while %s's daemon was down for %v: %v requests through %s answered", n3.name, up.Sub(down).Round(100*time.Millisecond), okWhileDown, vip)
		c.waitAllConverged(t, sha, 2*time.Minute)
	})

	step("MasterFailover", func(t *testing.T) {
		// Any node may be the master, node 1 included: the store keeps two of its three members.
		// The test watches through a node that is not the master.
		master := c.node(t, c.nodes[0].status().Master)
		n1 := c.nodes[0]
		if master == n1 {
			n1 = c.nodes[1]
		}
		// An Indexed Job runs while the master dies: it must end with each completion counted
		// once, none lost, none twice.
		c.repo.commit("count job", map[string]string{"count.yaml": job("count",
			"  completions: 6\n  parallelism: 3\n  completionMode: Indexed", `["sleep", "4"]`)})
		waitUntil(t, "the Job running", 60*time.Second, func() bool {
			jobs, err := n1.jobs()
			return err == nil && jobs["count"].Status.Active > 0
		})
		t.Logf("killing the master %s", master.name)
		killed := time.Now()
		master.kill()
		var next string
		waitUntil(t, "a new master", 30*time.Second, func() bool {
			next = n1.status().Master
			return next != "" && next != master.name
		})
		t.Logf("%s became master %v after the kill", next, time.Since(killed).Round(100*time.Millisecond))

		// A new commit is applied; the lost node's pods move to the others.
		sha := c.repo.commit("extra", map[string]string{"extra.yaml": deployment("extra", 1, "v1", "")})
		waitUntil(t, "the new commit applied", 60*time.Second, func() bool {
			st := n1.status()
			return st.Applied != nil && st.Applied.SHA == sha
		})
		waitUntil(t, "the pods of the lost node rescheduled", 2*time.Minute, func() bool {
			pods, err := n1.lanPods()
			if err != nil {
				return false
			}
			web, extra := podsByNode(pods, "web-"), podsByNode(pods, "extra-")
			return web[master.name] == 0 && sum(web) == 6 && extra[master.name] == 0 && sum(extra) == 1
		})
		t.Logf("the lost node's pods run elsewhere %v after the kill", time.Since(killed).Round(100*time.Millisecond))

		// The lost node comes back and the whole cluster converges.
		master.start(t)
		master.waitAPI(t)
		c.waitAllConverged(t, sha, 2*time.Minute)
		c.waitOnlyAssignedRun(t, master)
		jobs, err := n1.jobs()
		if err != nil {
			t.Fatal(err)
		}
		if st := jobs["count"].Status; st.Succeeded != 6 || st.CompletedIndexes != "0-5" {
			t.Errorf("the Job after the failover: succeeded %d, indexes %q, failed %d; want 6 and 0-5", st.Succeeded, st.CompletedIndexes, st.Failed)
		}
	})

	step("PausedMasterIsFenced", func(t *testing.T) { stepPausedMasterIsFenced(t, c) })

	step("PausedNodeIsReplacedAndFenced", func(t *testing.T) {
		n1 := c.nodes[0]
		// Scale up so that the node that came back gets pods again.
		sha := c.repo.commit("web: 9 replicas", map[string]string{"web.yaml": deployment("web", 9, "v1", "")})
		c.waitAllConverged(t, sha, 2*time.Minute)
		st := n1.status()
		pods, err := n1.lanPods()
		if err != nil {
			t.Fatal(err)
		}
		// Pause the node with the most pods of those that neither hold the store nor are master.
		var p *lanNode
		spread := podsByNode(pods, "web-")
		for _, n := range c.nodes[1:] {
			if n.name != st.Master && (p == nil || spread[n.name] > spread[p.name]) {
				p = n
			}
		}
		if spread[p.name] == 0 {
			t.Fatalf("no web pod on %s to replace: %v", p.name, spread)
		}
		client := lanPod{}
		for _, pod := range pods {
			if pod.Node != p.name && strings.HasPrefix(pod.Name, "web-") {
				client = pod
			}
		}
		t.Logf("pausing %s", p.name)
		paused := time.Now()
		p.pause()
		var now []lanPod
		waitUntil(t, "the paused node's pods replaced", 2*time.Minute, func() bool {
			now, err = n1.lanPods()
			web := podsByNode(now, "web-")
			return err == nil && web[p.name] == 0 && sum(web) == 9
		})
		t.Logf("the %d pods of the paused node were replaced %v after the pause", spread[p.name], time.Since(paused).Round(100*time.Millisecond))

		// The paused node's containers still run, but the Service sends nothing to them.
		serving := map[string]bool{}
		for _, pod := range now {
			if pod.Node != p.name {
				serving[pod.Name] = true
			}
		}
		vip := n1.serviceIP("web")
		client.Node = ""
		for _, pod := range now {
			if pod.Name == client.Name {
				client = pod
			}
		}
		if client.Node == "" {
			t.Fatalf("the client pod %s is gone", client.Name)
		}
		cn := c.node(t, client.Node)
		waitUntil(t, "the Service without the paused node", 30*time.Second, func() bool {
			for i := 0; i < 6; i++ {
				out, err := cn.exec(client.Name, "/app", "get", "http://"+vip+"/")
				if err != nil {
					return false
				}
				_, from, _ := strings.Cut(strings.TrimSpace(out), " from ")
				if !serving[from] {
					t.Logf("answer from %q, a pod of the paused node", from)
					return false
				}
			}
			return true
		})

		// Back: the node stops its replaced pods and the cluster converges.
		p.resume()
		c.waitAllConverged(t, st.Applied.SHA, 2*time.Minute)
		c.waitOnlyAssignedRun(t, p)
	})

	step("PartitionAndHeal", func(t *testing.T) {
		// A node that neither holds the store nor leads is cut off the lan. Its pods keep
		// running (losing the store is no reason to stop workloads), the others replace them;
		// after the heal it stops the replaced pods and no pod runs twice.
		n1 := c.nodes[0]
		st := n1.status()
		if st.Applied == nil {
			t.Fatal("no applied commit")
		}
		sha := st.Applied.SHA
		webWant, extraWant := desiredReplicas(st, "web"), desiredReplicas(st, "extra")
		pods, err := n1.lanPods()
		if err != nil {
			t.Fatal(err)
		}
		var p *lanNode
		spread := podsByNode(pods, "web-")
		for _, n := range c.nodes[1:] {
			if n.name != st.Master && (p == nil || spread[n.name] > spread[p.name]) {
				p = n
			}
		}
		if p == nil {
			t.Fatalf("every node but %s is master (%s)", n1.name, st.Master)
		}
		if spread[p.name] == 0 {
			// p lost its pods to the others earlier: drain node 1 so that the replacements of
			// its pods fill p, then make node 1 schedulable again.
			t.Logf("no web pod on %s %v: draining %s", p.name, spread, n1.name)
			if _, err := n1.shoal("drain", n1.name); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "web pods on "+p.name, 2*time.Minute, func() bool {
				pods, err = n1.lanPods()
				spread = podsByNode(pods, "web-")
				return err == nil && spread[p.name] > 0 && spread[n1.name] == 0 && sum(spread) == webWant
			})
			if _, err := n1.shoal("uncordon", n1.name); err != nil {
				t.Fatal(err)
			}
			c.waitAllConverged(t, sha, 2*time.Minute)
			for _, n := range c.nodes {
				c.waitOnlyAssignedRun(t, n)
			}
		}
		before := p.appProcesses()
		t.Logf("cutting %s off (master %s): web pods %v, %d app processes on it", p.name, st.Master, spread, before)
		cut := time.Now()
		p.partition(t)
		fewest := before
		watch := func() {
			if n := p.appProcesses(); n < fewest {
				fewest = n
			}
		}
		waitUntil(t, "the cut-off node's pods replaced", 2*time.Minute, func() bool {
			watch()
			now, err := n1.lanPods()
			web, extra := podsByNode(now, "web-"), podsByNode(now, "extra-")
			return err == nil && web[p.name] == 0 && sum(web) == webWant && extra[p.name] == 0 && sum(extra) == extraWant
		})
		t.Logf("the %d web pods of %s were replaced %v after the cut", spread[p.name], p.name, time.Since(cut).Round(100*time.Millisecond))
		// Stay cut off a little longer: long enough for the node to act on the lost store.
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			watch()
		}
		if fewest != before {
			t.Errorf("while cut off, %s ran as few as %d app processes, %d before the cut: it stopped pods", p.name, fewest, before)
		}

		p.heal(t)
		healed := time.Now()
		c.waitAllConverged(t, sha, 3*time.Minute)
		c.waitOnlyAssignedRun(t, p)
		t.Logf("%s rejoined and stopped its replaced pods %v after the heal", p.name, time.Since(healed).Round(100*time.Millisecond))
		// No duplicates anywhere: one app process per serving pod the cluster places.
		var running, placed int
		waitUntil(t, "one app process per placed pod", time.Minute, func() bool {
			pods, err := n1.lanPods()
			if err != nil {
				return false
			}
			placed, running = 0, 0
			for _, pod := range pods {
				if isServing(pod.Name) {
					placed++
				}
			}
			for _, n := range c.nodes {
				running += n.appProcesses()
			}
			// The agent DaemonSet runs one pod per node.
			return placed == webWant+extraWant+len(c.nodes) && running == placed
		})
	})

	step("RevertRollsBackEveryNode", func(t *testing.T) {
		git(t, c.repo.work, "revert", "--no-edit", "HEAD")
		git(t, c.repo.work, "push", "-q", "origin", "main")
		sha := c.repo.head()
		c.waitAllConverged(t, sha, 2*time.Minute)
		for _, n := range c.nodes {
			waitUntil(t, "6 web pods on "+n.name, time.Minute, func() bool {
				pods, err := n.lanPods()
				return err == nil && countLAN(pods, "web-") == 6
			})
		}
	})

	step("StatefulSetKeepsItsData", func(t *testing.T) { stepStatefulSet(t, c) })

	step("StoreMemberLostAndNodeRemoved", func(t *testing.T) { stepStoreMemberLost(t, c) })
}

// waitOnlyAssignedRun waits until the app processes in n's pods are exactly those of the
// serving pods the cluster places on n: the pods replaced while n was gone are stopped.
func (c *lanCluster) waitOnlyAssignedRun(t testing.TB, n *lanNode) {
	t.Helper()
	want, got := -1, -1
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		pods, err := c.nodes[0].lanPods()
		if err == nil {
			want = 0
			for _, p := range pods {
				if p.Node == n.name && isServing(p.Name) {
					want++
				}
			}
			if got = n.appProcesses(); got == want {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%d app processes run in the pods of %s, want the %d of its serving pods", got, n.name, want)
}

// isServing tells the pods whose app runs `serve` (counted by appProcesses): those of the web
// and extra Deployments and of the agent DaemonSet, not the poller.
func isServing(pod string) bool {
	return strings.HasPrefix(pod, "web-") || strings.HasPrefix(pod, "extra-") || strings.HasPrefix(pod, "agent-")
}

// desiredReplicas returns the replicas the status shows for a Deployment of the default
// namespace (0 when there is none).
func desiredReplicas(st cluster.Status, name string) int {
	for _, d := range st.Deployments {
		if d.Name == name && (d.Namespace == "" || d.Namespace == "default") {
			return int(d.Desired)
		}
	}
	return 0
}

// firstOn returns the first pod on node.
func firstOn(pods []lanPod, node string) lanPod {
	for _, p := range pods {
		if p.Node == node {
			return p
		}
	}
	return lanPod{}
}

func countLAN(pods []lanPod, prefix string) int {
	n := 0
	for _, p := range pods {
		if strings.HasPrefix(p.Name, prefix) {
			n++
		}
	}
	return n
}

func sum(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// stepLoadBalancerOnEveryNode commits web as a LoadBalancer Service on port 8081: every node lists
// as its ingress, a client outside the nodes (in the git server's namespace, on the lan) reaches
// the pods of several nodes at node 2's address and port 8081, and once the Service is deleted
// the port is closed. On the daemons' own port 7443 it opens nowhere and stays <pending>.
func stepLoadBalancerOnEveryNode(t *testing.T, c *lanCluster, web []lanPod) {
	sha := c.repo.commit("web: load balancer", map[string]string{"web-lb.yaml": webLoadBalancer})
	c.waitAllConverged(t, sha, 2*time.Minute)
	n1, n2 := c.nodes[0], c.nodes[1]
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.addr)
	}
	ingress := strings.Join(addrs, ",")
	var table string
	waitUntil(t, "EXTERNAL-IP "+ingress, 30*time.Second, func() bool {
		out, err := n1.shoal("get", "services")
		table = out
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); err == nil && len(f) >= 5 && f[0] == "web-lb" {
				return f[1] == "LoadBalancer" && f[3] == ingress && strings.HasPrefix(f[4], "8081:")
			}
		}
		return false
	})
	t.Logf("get services:\n%s", table)
	url := "http://" + n2.addr + ":8081/"
	from := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for tries := 0; len(from) < 2 || tries < 6; tries++ {
		if time.Now().After(deadline) {
			t.Fatalf("GET %s from the lan: answers from the pods of %v only", url, keys(from))
		}
		o, err := c.getFromLAN(url)
		if err != nil {
			t.Logf("GET %s from the lan: %v", url, err)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		for _, p := range web {
			if strings.Contains(o, "from "+p.Name) {
				from[p.Node] = true
			}
		}
	}
	t.Logf("GET %s from the lan: answers from the pods of nodes %v", url, keys(from))

	sha = c.repo.commit("web: no load balancer", map[string]string{"web-lb.yaml": ""})
	c.waitAllConverged(t, sha, 2*time.Minute)
	var last error
	waitUntil(t, "port 8081 closed on "+n2.addr, 30*time.Second, func() bool {
		_, last = c.getFromLAN(url)
		return last != nil && strings.Contains(last.Error(), "connection refused")
	})
	t.Logf("after the delete: %v", last)
	if out, err := n1.shoal("get", "services"); err != nil || strings.Contains(out, "web-lb") {
		t.Errorf("get services after the delete: %v\n%s", err, out)
	}

	// On the port of the nodes' cluster endpoint (7443) no node opens it: the Service stays
	// <pending>, and the endpoint still serves the logs that node 1 asks of node 2.
	sha = c.repo.commit("web: load balancer on 7443", map[string]string{"web-lb.yaml": strings.Replace(webLoadBalancer, "port: 8081", "port: 7443", 1)})
	c.waitAllConverged(t, sha, 2*time.Minute)
	waitUntil(t, "web-lb <pending>", 30*time.Second, func() bool {
		out, err := n1.shoal("get", "services")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); err == nil && len(f) >= 5 && f[0] == "web-lb" {
				return f[3] == "<pending>" && strings.HasPrefix(f[4], "7443:")
			}
		}
		return false
	})
	if pod := firstOn(web, n2.name); pod.Name == "" {
		t.Errorf("no web pod on %s", n2.name)
	} else if _, err := n1.shoal("logs", pod.Name); err != nil {
		t.Errorf("logs of %s on %s through its cluster endpoint: %v", pod.Name, n2.name, err)
	}
	sha = c.repo.commit("web: no load balancer on 7443", map[string]string{"web-lb.yaml": ""})
	c.waitAllConverged(t, sha, 2*time.Minute)
}
