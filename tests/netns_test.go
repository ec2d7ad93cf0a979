package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lanCluster is a cluster of shoal daemons, each in its own network namespace, joined by a
// bridge in a "lan" namespace: node N has the address 10.99.0.N/24 on its eth0. Node 1 serves
// the embedded store on 10.99.0.1:2379; the others use it. Nothing is changed in the machine's
// own network namespace.
type lanCluster struct {
	t      testing.TB
	id     string // shoal-e2e-<rand>
	lan    string // the lan namespace
	repo   *gitRepo
	image  string // the packed example app
	cgRoot string // the cgroup v2 mount
	nodes  []*lanNode
}

// lanNode is one daemon of a lanCluster.
type lanNode struct {
	*node
	c        *lanCluster
	ns       string
	addr     string
	cgParent string
	lbCgroup string
	stopped  bool
}

// ipCmd runs ip(8) with args.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// cgroup2Mount finds the cgroup v2 hierarchy: /sys/fs/cgroup/unified on a hybrid machine, else
// /sys/fs/cgroup.
func cgroup2Mount() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err == nil && st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

// newLANCluster builds the namespaces of n nodes and a repository; it starts no daemon.
// Everything is removed in t.Cleanup, also when the test fails.
func newLANCluster(t testing.TB, n int) *lanCluster {
	t.Helper()
	shoal, app := binaries(t)
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	cgRoot, err := cgroup2Mount()
	if err != nil {
		t.Skip(err)
	}
	// newGitRepo makes the test's first temporary directory: the directories are removed after
	// c.cleanup has reset the nodes that keep their state there.
	c := &lanCluster{t: t, id: "shoal-e2e-" + randHex(3), repo: newGitRepo(t), cgRoot: cgRoot}
	c.lan = c.id + "-lan"
	t.Cleanup(c.cleanup)

	c.image = filepath.Join(t.TempDir(), "app.tar")
	if out, err := exec.Command(shoal, "image", "pack", app, "--tag", "localhost/e2e/app:v1", "-o", c.image).CombinedOutput(); err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
	steps := [][]string{
		{"netns", "add", c.lan},
		{"-n", c.lan, "link", "set", "lo", "up"},
		{"-n", c.lan, "link", "add", "shoal-lan", "type", "bridge"},
		{"-n", c.lan, "link", "set", "shoal-lan", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		c.addNode(i)
	}
	return c
}

func (c *lanCluster) addNode(i int) {
	t := c.t
	name := fmt.Sprintf("n%d", i)
	dir := t.TempDir()
	ln := &lanNode{c: c, ns: fmt.Sprintf("%s-%s", c.id, name), addr: fmt.Sprintf("10.99.0.%d", i),
		// The pods' cgroup lies inside the load balancer's: `shoal node reset` removes the pods'
		// cgroup before it detaches the load balancer, which needs its cgroup to exist.
		cgParent: "/" + c.id + "/" + name + "/node",
		node:     &node{t: t, name: name, dataDir: filepath.Join(dir, "data"), sock: filepath.Join(dir, "shoal.sock"), log: &bytes.Buffer{}}}
	ln.lbCgroup = filepath.Join(c.cgRoot, c.id, name)
	c.nodes = append(c.nodes, ln)
	veth := "shoal-" + name
	steps := [][]string{
		{"netns", "add", ln.ns},
		{"-n", ln.ns, "link", "set", "lo", "up"},
		{"-n", c.lan, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ln.ns},
		{"-n", c.lan, "link", "set", veth, "master", "shoal-lan", "up"},
		{"-n", ln.ns, "addr", "add", ln.addr + "/24", "dev", "eth0"},
		{"-n", ln.ns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(ln.lbCgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	imports := filepath.Join(ln.dataDir, "images", "import")
	if err := os.MkdirAll(imports, 0o700); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(c.image)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(imports, "app.tar"), img, 0o600); err != nil {
		t.Fatal(err)
	}
	ln.args = []string{"daemon", "--node-name", name, "--data-dir", ln.dataDir, "--socket", ln.sock,
		"--repo", "file://" + c.repo.bare, "--poll", "1s", "--crash-loop-base", "1s", "--lease-ttl", "5s",
		"--cgroup-parent", ln.cgParent, "--node-address", ln.addr, "--node-interface", "eth0", "--pod-network", "bridge",
		"--lb-cgroup", ln.lbCgroup, "--dns-upstream", "127.0.0.1:53", "--log-level", "debug"}
	if i == 1 {
		ln.args = append(ln.args, "--store-listen", "http://10.99.0.1:2379")
	} else {
		ln.args = append(ln.args, "--store", "etcd://10.99.0.1:2379")
	}
}

// startAll starts node 1 (the store), waits for its API, then starts the others and waits until
// the status shows every node.
func (c *lanCluster) startAll() {
	c.t.Helper()
	for i, n := range c.nodes {
		n.start(c.t)
		if i == 0 {
			n.waitAPI(c.t)
		}
	}
	for _, n := range c.nodes[1:] {
		n.waitAPI(c.t)
	}
	waitUntil(c.t, "every node in the status", 90*time.Second, func() bool {
		st := c.nodes[0].status()
		return len(st.Nodes) == len(c.nodes) && st.Master != ""
	})
}

// start starts the daemon inside the node's network namespace. nsenter enters only the network
// namespace, so the daemon sees the machine's cgroup and bpf file systems.
func (n *lanNode) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.ns, "--", shoalBin}, n.args...)...)
	n.logMu.Lock()
	fmt.Fprintf(n.log, "--- start %s\n", time.Now().Format(time.TimeOnly))
	n.logMu.Unlock()
	cmd.Stdout = syncBuffer{&n.logMu, n.log}
	cmd.Stderr = syncBuffer{&n.logMu, n.log}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = cmd
	n.stopped = false
}

func (n *lanNode) waitAPI(t testing.TB) {
	t.Helper()
	waitUntil(t, "the API of "+n.name, 90*time.Second, func() bool {
		_, err := n.shoal("status")
		return err == nil
	})
}

// pause stops the daemon with SIGSTOP; resume continues it.
func (n *lanNode) pause() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGSTOP)
		n.stopped = true
	}
}

func (n *lanNode) resume() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		n.stopped = false
	}
}

// exec runs a command in a pod through this node's API.
func (n *lanNode) exec(pod string, cmd ...string) (string, error) {
	return n.shoal(append([]string{"exec", pod, "--"}, cmd...)...)
}

// node returns the cluster's node by name.
func (c *lanCluster) node(t testing.TB, name string) *lanNode {
	t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no node %q", name)
	return nil
}

// waitUntil polls cond until it holds, or fails t after timeout.
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// podsByNode counts the ready pods whose name starts with prefix on each node.
func podsByNode(pods []lanPod, prefix string) map[string]int {
	m := map[string]int{}
	for _, p := range pods {
		if strings.HasPrefix(p.Name, prefix) && p.Ready {
			m[p.Node]++
		}
	}
	return m
}

// lanPod is a pod as `shoal get pods -A -o json` shows it, with its address.
type lanPod struct {
	Name  string
	Node  string
	IP    string
	Ready bool
}

func (n *lanNode) lanPods() ([]lanPod, error) {
	out, err := n.shoal("get", "pods", "-A", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				PodIP      string `json:"podIP"`
				Conditions []struct {
					Type, Status string
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("get pods: %w\n%s", err, out)
	}
	var pods []lanPod
	for _, it := range list.Items {
		p := lanPod{Name: it.Metadata.Name, Node: it.Spec.NodeName, IP: it.Status.PodIP}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.Ready = true
			}
		}
		pods = append(pods, p)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods, nil
}

// serviceIP returns the virtual IP the master gave a Service of the default namespace.
func (n *lanNode) serviceIP(name string) string {
	out, err := n.shoal("get", "svc", name, "-o", "json")
	if err != nil {
		return ""
	}
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	// A single object or a List with one item.
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	raw := []byte(out)
	if json.Unmarshal(raw, &list) == nil && len(list.Items) == 1 {
		raw = list.Items[0]
	}
	if err := json.Unmarshal(raw, &svc); err != nil {
		return ""
	}
	return svc.Spec.ClusterIP
}

// waitAllConverged waits until the status of every running node says the cluster converged to
// sha and every node reports it.
func (c *lanCluster) waitAllConverged(t testing.TB, sha string, timeout time.Duration) {
	t.Helper()
	waitUntil(t, "every node converged to "+sha[:7], timeout, func() bool {
		for _, n := range c.nodes {
			if n.cmd == nil || n.stopped {
				continue
			}
			st := n.status()
			if st.Converged != sha {
				return false
			}
			for _, ns := range st.Nodes {
				if ns.Converged != sha {
					return false
				}
			}
		}
		return true
	})
}

// cleanup kills the daemons, resets every node inside its namespace and removes the namespaces,
// cgroups and bpf pins; then it checks that nothing of the cluster is left.
func (c *lanCluster) cleanup() {
	t := c.t
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
		}
		n.kill()
		if t.Failed() {
			n.logMu.Lock()
			t.Logf("daemon log of %s:\n%s", n.name, lastLines(n.log.String(), 60))
			n.logMu.Unlock()
		}
	}
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := n.reset(); err != nil {
				t.Errorf("node reset of %s: %v\n%s", n.name, err, out)
			}
		}()
	}
	wg.Wait()
	for _, n := range c.nodes {
		_ = os.RemoveAll(filepath.Join("/sys/fs/bpf/shoal", n.name))
		if err := ipCmd("netns", "del", n.ns); err != nil {
			t.Error(err)
		}
	}
	_ = os.Remove("/sys/fs/bpf/shoal") // only when empty: other nodes of the machine may use it
	if err := ipCmd("netns", "del", c.lan); err != nil {
		t.Error(err)
	}
	hierarchies, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", c.id))
	for _, h := range hierarchies {
		if err := removeCgroupTree(h); err != nil {
			t.Error(err)
		}
	}
	if err := removeCgroupTree(filepath.Join("/sys/fs/cgroup", c.id)); err != nil {
		t.Error(err)
	}
	c.checkNothingLeft()
}

// reset runs `shoal node reset` for the node inside its network namespace (where its bridge is).
func (n *lanNode) reset() ([]byte, error) {
	return exec.Command("nsenter", "--net=/run/netns/"+n.ns, "--", shoalBin, "node", "reset",
		"--node-name", n.name, "--data-dir", n.dataDir, "--cgroup-parent", n.cgParent, "--grace", "1s").CombinedOutput()
}

// appProcesses counts the example app's server processes in the node's pods (by their cgroup).
func (n *lanNode) appProcesses() int {
	entries, _ := os.ReadDir("/proc")
	count := 0
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmdline, []byte("/app\x00serve")) {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && bytes.Contains(cg, []byte(n.cgParent+"/")) {
			count++
		}
	}
	return count
}

// removeCgroupTree removes a cgroup directory and its children, deepest first (cgroup
// directories hold only kernel files, which rmdir takes along).
func removeCgroupTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		var rmErr error
		for try := 0; try < 50; try++ { // a dying process may still hold it for a moment
			if rmErr = syscall.Rmdir(dirs[i]); rmErr == nil || errors.Is(rmErr, fs.ErrNotExist) {
				rmErr = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if rmErr != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], rmErr))
		}
	}
	return errors.Join(errs...)
}

// checkNothingLeft reports anything of the cluster still on the machine.
func (c *lanCluster) checkNothingLeft() {
	t := c.t
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), c.id) {
		t.Errorf("network namespaces left:\n%s", out)
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, c.id) {
			t.Errorf("mount left: %s", l)
		}
	}
	if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", c.id)); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, n := range c.nodes {
		if _, err := os.Stat(filepath.Join("/sys/fs/bpf/shoal", n.name)); err == nil {
			t.Errorf("bpf pins left in /sys/fs/bpf/shoal/%s", n.name)
		}
	}
}
