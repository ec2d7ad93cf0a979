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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lanCluster is a cluster of shoal daemons, each in its own network namespace, joined by a
// bridge in a "lan" namespace: node N has the address 10.99.0.N/24 on its eth0. A git server
// namespace on the same bridge (gitAddr) serves the repository with `git daemon`; the nodes
// follow it over git://. Node 1 founds the cluster; the others join it with its token, and the
// first three run the members of the store. Nothing is changed in the machine's own network
// namespace.
type lanCluster struct {
	t      testing.TB
	id     string // shoal-e2e-<rand>
	lan    string // the lan namespace
	repo   *gitRepo
	image  string // the packed example app
	cgRoot string // the cgroup v2 mount
	nodes  []*lanNode

	gitNS   string    // the git server's namespace, once created
	gitCmd  *exec.Cmd // git daemon, the leader of its process group
	gitPgid int       // its process group, also after it was killed
	gitLog  bytes.Buffer
	gitMu   sync.Mutex // guards gitLog
	repoURL string     // what the nodes follow
}

// gitAddr is the git server's address on the lan.
const gitAddr = "10.99.0.250"

// lanNode is one daemon of a lanCluster.
type lanNode struct {
	*node
	c           *lanCluster
	ns          string
	addr        string
	veth        string // the lan end of the node's link, in the lan namespace
	cgParent    string
	lbCgroup    string
	stopped     bool
	partitioned bool
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
	c.startGitServer()
	for i := 1; i <= n; i++ {
		c.addNode(i)
	}
	if n > 0 {
		c.waitGitServer(c.nodes[0].ns)
	}
	return c
}

// attach adds the namespace ns to the lan: a veth pair with the lan end, named veth, on the
// bridge and the other end, eth0, in ns with addr/24.
func (c *lanCluster) attach(ns, veth, addr string) error {
	steps := [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", c.lan, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", c.lan, "link", "set", veth, "master", "shoal-lan", "up"},
		{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// startGitServer makes the git server's namespace and runs `git daemon` in it, serving the
// bare repository at git://gitAddr/cluster.git. The tests still commit by pushing to the bare
// repository on disk.
func (c *lanCluster) startGitServer() {
	t := c.t
	c.gitNS = c.id + "-git"
	if err := c.attach(c.gitNS, "shoal-git", gitAddr); err != nil {
		t.Fatal(err)
	}
	base := filepath.Dir(c.repo.bare)
	// nsenter enters only the network namespace and execs git, which runs git-daemon as a
	// child that forks per connection: they share the process group killed at cleanup.
	cmd := exec.Command("nsenter", "--net=/run/netns/"+c.gitNS, "--", "git", "daemon", "--reuseaddr",
		"--export-all", "--base-path="+base, "--listen="+gitAddr, base)
	cmd.Stdout = syncBuffer{&c.gitMu, &c.gitLog}
	cmd.Stderr = syncBuffer{&c.gitMu, &c.gitLog}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start git daemon: %v", err)
	}
	c.gitCmd, c.gitPgid = cmd, cmd.Process.Pid
	c.repoURL = "git://" + gitAddr + "/cluster.git"
}

// waitGitServer waits until the repository can be listed from the namespace ns.
func (c *lanCluster) waitGitServer(ns string) {
	t := c.t
	var out []byte
	var err error
	for try := 0; try < 100; try++ {
		out, err = exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "git", "ls-remote", c.repoURL).CombinedOutput()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.gitMu.Lock()
	defer c.gitMu.Unlock()
	t.Fatalf("the git server at %s does not answer from %s: %v\n%s\ngit daemon: %s", c.repoURL, ns, err, out, c.gitLog.String())
}

// stopGitServer kills the git server's process group.
func (c *lanCluster) stopGitServer() {
	if c.gitCmd == nil {
		return
	}
	_ = syscall.Kill(-c.gitPgid, syscall.SIGKILL)
	_ = c.gitCmd.Wait()
	c.gitCmd = nil
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
	ln.veth = "shoal-" + name
	c.nodes = append(c.nodes, ln)
	if err := c.attach(ln.ns, ln.veth, ln.addr); err != nil {
		t.Fatal(err)
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
		"--repo", c.repoURL, "--poll", "1s", "--crash-loop-base", "1s", "--lease-ttl", "5s",
		"--cgroup-parent", ln.cgParent, "--node-address", ln.addr, "--node-interface", "eth0", "--pod-network", "bridge",
		"--lb-cgroup", ln.lbCgroup, "--dns-upstream", "127.0.0.1:53", "--log-level", "debug"}
	if i > 1 {
		// Node 1 founds the cluster and writes the join token at its first start.
		ln.args = append(ln.args, "--join", c.nodes[0].addr, "--join-token-file", filepath.Join(c.nodes[0].dataDir, "token"))
	}
}

// startAll starts node 1 (the founder), waits for its API, then starts the others, which join,
// and waits until the status shows every node.
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

// partition cuts the node off the lan: the lan end of its link goes down, as if its cable were
// pulled. The node then reaches no other node, not the store (served by node 1, so partitioning
// node 1 cuts every node off the store), and not the git server; none of them reach it. Inside
// the node nothing changes: its daemon keeps running, its API socket answers on the machine, its
// pods keep running and reach each other. Nothing is reset: packets between the node and the lan
// are lost (new connections fail or time out, open ones stall) until heal brings the link back.
func (n *lanNode) partition(t testing.TB) {
	t.Helper()
	if err := ipCmd("-n", n.c.lan, "link", "set", n.veth, "down"); err != nil {
		t.Fatal(err)
	}
	n.partitioned = true
}

// heal ends a partition.
func (n *lanNode) heal(t testing.TB) {
	t.Helper()
	if err := ipCmd("-n", n.c.lan, "link", "set", n.veth, "up"); err != nil {
		t.Fatal(err)
	}
	n.partitioned = false
}

// getFromLAN runs the example app's `get URL` in the git server's namespace: a client on the
// lan that is none of the nodes.
func (c *lanCluster) getFromLAN(url string) (string, error) {
	_, app := binaries(c.t)
	cmd := exec.Command("nsenter", "--net=/run/netns/"+c.gitNS, "--", app, "get", url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("get %s: %v: %s", url, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
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
	defer func() {
		if t.Failed() {
			c.dump(t)
		}
	}()
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

// cleanup heals partitions, kills the daemons and the git server, resets every node inside its
// namespace and removes the namespaces, cgroups and bpf pins; then it checks that nothing of the
// cluster is left.
func (c *lanCluster) cleanup() {
	t := c.t
	for _, n := range c.nodes {
		if n.partitioned {
			if err := ipCmd("-n", c.lan, "link", "set", n.veth, "up"); err != nil {
				t.Error(err)
			}
			n.partitioned = false
		}
	}
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
		}
		n.kill()
		if t.Failed() {
			n.logMu.Lock()
			t.Logf("daemon log of %s (without debug lines):\n%s", n.name, lastLines(withoutDebug(n.log.String()), 80))
			n.logMu.Unlock()
		}
	}
	c.stopGitServer()
	if t.Failed() && c.gitLog.Len() > 0 { // the git server is stopped: nothing writes gitLog
		t.Logf("git daemon log:\n%s", lastLines(c.gitLog.String(), 30))
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
	if c.gitNS != "" {
		if err := ipCmd("netns", "del", c.gitNS); err != nil {
			t.Error(err)
		}
	}
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
	if c.gitPgid != 0 {
		if left := liveInGroup(c.gitPgid); len(left) > 0 {
			t.Errorf("git server processes left: %v", left)
		}
	}
}

// liveInGroup returns the processes of the process group pgid that are not zombies (which only
// wait for their parent to reap them).
func liveInGroup(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pid, _ := strconv.Atoi(e.Name())
			pids = append(pids, pid)
		}
	}
	return pids
}

// withoutDebug drops the debug lines of a daemon log.
func withoutDebug(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "level=DEBUG") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// dump logs what a running node shows of the cluster, for a failed test.
func (c *lanCluster) dump(t testing.TB) {
	for _, n := range c.nodes {
		if n.cmd == nil || n.stopped {
			continue
		}
		for _, args := range [][]string{{"status"}, {"get", "pods", "-A", "-o", "wide"}, {"get", "jobs"}, {"get", "ds"}, {"events"}} {
			out, err := n.shoal(args...)
			t.Logf("%s: shoal %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
		}
		return
	}
}
