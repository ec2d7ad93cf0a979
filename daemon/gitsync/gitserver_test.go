package gitsync

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/revision"
)

// commitClock gives every test commit its own time, one minute apart, so
// that history order does not depend on the speed of the machine.
var commitClock atomic.Int64

func gitEnv() []string {
	n := commitClock.Add(1)
	date := fmt.Sprintf("@%d +0000", 1_700_000_000+n*60)
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Shoal Test",
		"GIT_AUTHOR_EMAIL=test@shoal.invalid",
		"GIT_COMMITTER_NAME=Shoal Test",
		"GIT_COMMITTER_EMAIL=test@shoal.invalid",
		"GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_DATE="+date,
		"GIT_TERMINAL_PROMPT=0",
	)
}

// runGit runs the git command line in dir and returns its trimmed output.
func runGit(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newUpstream creates a repository with a worktree in a new directory
// under parent (a temp dir when empty) and commits files to it.
func newUpstream(tb testing.TB, parent string, files map[string]string) string {
	tb.Helper()
	if parent == "" {
		parent = tb.TempDir()
	}
	dir := filepath.Join(parent, "shoal-upstream")
	runGit(tb, parent, "init", "-q", "-b", "main", dir)
	commitFiles(tb, dir, files, "initial")
	return dir
}

// commitFiles writes files (path -> content; "" content removes) and
// commits them, returning the new commit's SHA.
func commitFiles(tb testing.TB, dir string, files map[string]string, msg string) string {
	tb.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if content == "" {
			runGit(tb, dir, "rm", "-q", "--ignore-unmatch", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
		runGit(tb, dir, "add", name)
	}
	runGit(tb, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return runGit(tb, dir, "rev-parse", "HEAD")
}

func configMap(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  greeting: hello\n"
}

// httpGit serves the repositories under root with git http-backend over
// CGI on a loopback port that survives stop and start.
type httpGit struct {
	tb   testing.TB
	root string
	addr string
	mu   sync.Mutex
	srv  *httptest.Server
}

func serveHTTP(tb testing.TB, root string) *httpGit {
	tb.Helper()
	h := &httpGit{tb: tb, root: root, addr: "127.0.0.1:0"}
	h.start()
	tb.Cleanup(h.stop)
	return h
}

func (h *httpGit) start() {
	h.tb.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		h.tb.Fatalf("git --exec-path: %v", err)
	}
	handler := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{
			"GIT_PROJECT_ROOT=" + h.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
	}
	var ln net.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err = net.Listen("tcp", h.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		h.tb.Fatalf("listen %s: %v", h.addr, err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	h.mu.Lock()
	h.addr = ln.Addr().String()
	h.srv = srv
	h.mu.Unlock()
}

func (h *httpGit) stop() {
	h.mu.Lock()
	srv := h.srv
	h.srv = nil
	h.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

func (h *httpGit) url(repo string) string { return "http://" + h.addr + "/" + repo }

// gitDaemon runs git daemon on a loopback port.
type gitDaemon struct {
	tb   testing.TB
	base string
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func serveDaemon(tb testing.TB, base string) *gitDaemon {
	tb.Helper()
	d := &gitDaemon{tb: tb, base: base, port: freePort(tb)}
	d.start()
	tb.Cleanup(d.stop)
	return d
}

func (d *gitDaemon) start() {
	d.tb.Helper()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--base-path="+d.base, "--export-all",
		"--listen=127.0.0.1", "--port="+strconv.Itoa(d.port), d.base)
	cmd.Env = gitEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		d.tb.Fatalf("start git daemon: %v", err)
	}
	d.mu.Lock()
	d.cmd = cmd
	d.mu.Unlock()
	addr := "127.0.0.1:" + strconv.Itoa(d.port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			d.stop()
			d.tb.Fatalf("git daemon does not accept connections on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the daemon and the processes it started for connections.
func (d *gitDaemon) stop() {
	d.mu.Lock()
	cmd := d.cmd
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

func (d *gitDaemon) url(repo string) string {
	return "git://127.0.0.1:" + strconv.Itoa(d.port) + "/" + repo
}

// testLogger writes the Syncer's log to the test log (benchmarks discard
// it).
func testLogger(tb testing.TB) *slog.Logger {
	if _, ok := tb.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newSyncer creates a Syncer with a cache in a temp dir and fast retries.
func newSyncer(tb testing.TB, cfg Config) *Syncer {
	tb.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(tb.TempDir(), "shoal-git")
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Hour
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	s.backoffMin = 20 * time.Millisecond
	s.backoffMax = 200 * time.Millisecond
	return s
}

// start runs s until the test ends.
func start(tb testing.TB, s *Syncer) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Errorf("Run did not return after its context ended")
		}
	})
}

// waitHead waits for a head with the given SHA on s.Heads.
func waitHead(tb testing.TB, s *Syncer, sha string, timeout time.Duration) revision.Head {
	tb.Helper()
	deadline := time.After(timeout)
	var seen []string
	for {
		select {
		case h, ok := <-s.Heads():
			if !ok {
				tb.Fatalf("Heads closed while waiting for %s", sha)
			}
			if h.SHA == sha {
				return h
			}
			seen = append(seen, h.SHA)
		case <-deadline:
			tb.Fatalf("no head %s within %v (saw %v)", sha, timeout, seen)
		}
	}
}

// noHead checks that no head arrives within d.
func noHead(tb testing.TB, s *Syncer, d time.Duration) {
	tb.Helper()
	select {
	case h := <-s.Heads():
		tb.Fatalf("unexpected head %s", h.SHA)
	case <-time.After(d):
	}
}
