package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
)

// The e2e tests run the real shoal binary as root against real git servers.
var (
	buildOnce sync.Once
	shoalBin  string
	appBin    string
	buildErr  error
	buildDir  string
)

func needRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests run containers and need root")
	}
}

// binaries builds shoal and the example app once per test process.
func binaries(t testing.TB) (shoal, app string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "shoal-e2e-bin-")
		if buildErr != nil {
			return
		}
		shoalBin, appBin = filepath.Join(buildDir, "shoal"), filepath.Join(buildDir, "app")
		for _, b := range []struct {
			out, pkg string
			env      []string
			args     []string
		}{
			{shoalBin, "./daemon/cmd/shoal", []string{"CGO_ENABLED=1"}, []string{"-tags", "seccomp"}},
			{appBin, "./examples/app", []string{"CGO_ENABLED=0"}, []string{"-ldflags", "-s -w"}},
		} {
			args := append([]string{"build", "-o", b.out}, b.args...)
			cmd := exec.Command("go", append(args, b.pkg)...)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), b.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return shoalBin, appBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gitRepo is a working repository that pushes to a bare repository served by git servers.
type gitRepo struct {
	t        testing.TB
	work     string
	bare     string
	httpURL  string
	daemon   *exec.Cmd
	daemonAt string
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Tester", "GIT_AUTHOR_EMAIL=tester@shoal.invalid",
		"GIT_COMMITTER_NAME=Tester", "GIT_COMMITTER_EMAIL=tester@shoal.invalid", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newGitRepo makes a bare repository served over HTTP by git http-backend (through net/http/cgi)
// and a working clone to commit in.
func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	root := t.TempDir()
	r := &gitRepo{t: t, work: filepath.Join(root, "work"), bare: filepath.Join(root, "srv", "cluster.git")}
	git(t, root, "init", "-q", "--bare", "-b", "main", r.bare)
	git(t, r.bare, "config", "http.receivepack", "true")
	git(t, root, "init", "-q", "-b", "main", r.work)
	git(t, r.work, "remote", "add", "origin", r.bare)
	backend, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	h := &cgi.Handler{Path: backend, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(r.bare), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	r.httpURL = srv.URL + "/cluster.git"
	return r
}

// serveGitDaemon serves the bare repository with `git daemon` on a free loopback port.
func (r *gitRepo) serveGitDaemon() string {
	t := r.t
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r.daemonAt = fmt.Sprintf("127.0.0.1:%d", port)
	r.startGitDaemon()
	t.Cleanup(r.stopGitDaemon)
	return fmt.Sprintf("git://%s/cluster.git", r.daemonAt)
}

func (r *gitRepo) startGitDaemon() {
	t := r.t
	_, port, _ := net.SplitHostPort(r.daemonAt)
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+filepath.Dir(r.bare),
		"--listen=127.0.0.1", "--port="+port, filepath.Dir(r.bare))
	// git runs git-daemon as a child, which forks per connection: kill them as a group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.daemon = cmd
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", r.daemonAt); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("git daemon did not start")
}

func (r *gitRepo) stopGitDaemon() {
	if r.daemon != nil && r.daemon.Process != nil {
		_ = syscall.Kill(-r.daemon.Process.Pid, syscall.SIGKILL)
		_ = r.daemon.Wait()
		r.daemon = nil
	}
}

// commit writes files (nil content deletes), commits and pushes; it returns the commit.
func (r *gitRepo) commit(msg string, files map[string]string) string {
	t := r.t
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, r.work, "add", "-A")
	git(t, r.work, "commit", "-q", "--allow-empty", "-m", msg)
	git(t, r.work, "push", "-q", "origin", "main")
	return git(t, r.work, "rev-parse", "HEAD")
}

func (r *gitRepo) head() string { return git(r.t, r.work, "rev-parse", "HEAD") }

// commitLocal commits in the working repository without pushing (for nodes that follow it as a
// local repository).
func (r *gitRepo) commitLocal(msg string, files map[string]string) string {
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(r.work, name), []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	git(r.t, r.work, "add", "-A")
	git(r.t, r.work, "commit", "-q", "-m", msg)
	return r.head()
}

// node is a shoal daemon started by a test.
type node struct {
	t       testing.TB
	name    string
	dataDir string
	sock    string
	args    []string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	logMu   sync.Mutex
}

type syncBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (s syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// startNode imports the example app image and starts a daemon following repoURL.
func startNode(t testing.TB, repoURL string, extra ...string) *node {
	t.Helper()
	shoal, app := binaries(t)
	dir := t.TempDir()
	n := &node{t: t, name: "e2e-" + randHex(3), dataDir: filepath.Join(dir, "data"), sock: filepath.Join(dir, "shoal.sock"), log: &bytes.Buffer{}}
	if err := os.MkdirAll(filepath.Join(n.dataDir, "images", "import"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(shoal, "image", "pack", app, "--tag", "localhost/e2e/app:v1",
		"-o", filepath.Join(n.dataDir, "images", "import", "app.tar")).CombinedOutput()
	if err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
	n.args = append([]string{"daemon", "--node-name", n.name, "--data-dir", n.dataDir, "--repo", repoURL,
		"--socket", n.sock, "--poll", "1s", "--crash-loop-base", "1s", "--log-level", "debug",
		// These nodes run in the machine's own network namespace: they must not change it.
		"--pod-network", "none"}, extra...)
	n.start()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			n.logMu.Lock()
			t.Logf("daemon log of %s:\n%s", n.name, lastLines(n.log.String(), 80))
			n.logMu.Unlock()
		}
		rst := exec.Command(shoal, "node", "reset", "--node-name", n.name, "--data-dir", n.dataDir, "--grace", "1s")
		if out, err := rst.CombinedOutput(); err != nil {
			t.Errorf("node reset: %v\n%s", err, out)
		}
	})
	n.waitFor("the API", 60*time.Second, func() bool {
		_, err := n.shoal("status")
		return err == nil
	})
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (n *node) start() {
	cmd := exec.Command(shoalBin, n.args...)
	cmd.Stdout = syncBuffer{&n.logMu, n.log}
	cmd.Stderr = syncBuffer{&n.logMu, n.log}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.cmd = cmd
}

// kill stops the daemon with SIGKILL (pods keep running).
func (n *node) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		n.cmd = nil
	}
}

func (n *node) shoal(args ...string) (string, error) {
	// The socket flag goes before the arguments: after "--" everything is the command's.
	cmd := exec.Command(shoalBin, append([]string{args[0], "--socket", n.sock}, args[1:]...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("shoal %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (n *node) status() cluster.Status {
	out, err := n.shoal("status", "-o", "json")
	if err != nil {
		return cluster.Status{}
	}
	var st cluster.Status
	_ = json.Unmarshal([]byte(out), &st)
	return st
}

func (n *node) waitFor(what string, timeout time.Duration, cond func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConverged waits until the cluster has converged to sha.
func (n *node) waitConverged(sha string, timeout time.Duration) {
	n.t.Helper()
	n.waitFor("convergence to "+sha[:7], timeout, func() bool { return n.status().Converged == sha })
}

type podInfo struct {
	Name     string
	UID      string
	Ready    bool
	Phase    string
	Restarts int32
	Node     string
	Hash     string
}

func (n *node) pods() []podInfo {
	out, err := n.shoal("get", "pods", "-A", "-o", "json")
	if err != nil {
		n.t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				UID    string            `json:"uid"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				Phase      string `json:"phase"`
				Conditions []struct {
					Type, Status string
				} `json:"conditions"`
				ContainerStatuses []struct {
					RestartCount int32 `json:"restartCount"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		n.t.Fatalf("get pods: %v\n%s", err, out)
	}
	var pods []podInfo
	for _, it := range list.Items {
		p := podInfo{Name: it.Metadata.Name, UID: it.Metadata.UID, Phase: it.Status.Phase, Node: it.Spec.NodeName, Hash: it.Metadata.Labels["pod-template-hash"]}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.Ready = true
			}
		}
		for _, c := range it.Status.ContainerStatuses {
			p.Restarts += c.RestartCount
		}
		pods = append(pods, p)
	}
	return pods
}

// appPIDs returns the PIDs of the example app's processes, by pod hostname (the app's argv).
func appPIDs(t testing.TB) map[int]bool {
	out, err := exec.Command("pgrep", "-f", "^/app serve").Output()
	if err != nil && len(out) == 0 {
		return map[int]bool{}
	}
	pids := map[int]bool{}
	for _, f := range strings.Fields(string(out)) {
		var p int
		fmt.Sscan(f, &p)
		pids[p] = true
	}
	return pids
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
