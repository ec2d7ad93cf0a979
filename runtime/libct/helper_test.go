package libct

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
)

// Test layer: a directory with /testapp and a minimal /etc, used as the only lower layer.
var testLayer string

const ownerEnv = "SHOAL_LIBCT_TEST_OWNER"

func TestMain(m *testing.M) {
	if Main() {
		return
	}
	if os.Getenv(ownerEnv) != "" {
		os.Exit(runOwner())
	}
	code := func() int {
		if os.Geteuid() == 0 {
			// The container tests would each fail on libcontainer's "seccomp not supported".
			if err := CheckSeccomp(); err != nil {
				fmt.Fprintf(os.Stderr, "runtime/libct tests: %v (run the tests with -tags seccomp, as make test does)\n", err)
				return 1
			}
			dir, err := os.MkdirTemp("", "shoal-libct-layer-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			if err := makeLayer(dir); err != nil {
				fmt.Fprintln(os.Stderr, "build test layer:", err)
				return 1
			}
			testLayer = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

func makeLayer(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-ldflags", "-s -w", "-o", filepath.Join(dir, "testapp"), "./tests/testapp")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build testapp: %v: %s", err, out)
	}
	for _, d := range []string{"etc", "tmp", "proc", "sys", "dev", "bin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\nstaff:x:50:nobody\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (containers, mounts, cgroups)")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testEnv is one test's runner with its own state dir, cgroup subtree and netns.
type testEnv struct {
	t      testing.TB
	r      *Runner
	state  string
	cgroup string
	shimCg string
	netns  string
	logDir string
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	requireRoot(t)
	e := &testEnv{t: t, state: t.TempDir(), cgroup: "/shoal-test-" + randHex(4)}
	e.shimCg = e.cgroup + "/shims"
	e.logDir = filepath.Join(e.state, "logs")
	e.netns = filepath.Join(t.TempDir(), "shoal-netns")
	if err := NewNetNS(e.netns); err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(filepath.Join(e.state, "run"), WithShimCgroup(e.shimCg))
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	t.Cleanup(e.cleanup)
	return e
}

func (e *testEnv) cleanup() {
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := e.r.List(ctx)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, c := range cs {
		if err := c.Delete(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if err := RemoveNetNS(e.netns); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	destroyCgroup(t, e.cgroup)
	// Nothing of ours may stay mounted. Read this thread's view: libcontainer, when used
	// in-process (the bare benchmark), may leave the main thread in a container's mount
	// namespace, and /proc/self follows the main thread.
	runtime.LockOSThread()
	mi, err := os.ReadFile("/proc/thread-self/mountinfo")
	runtime.UnlockOSThread()
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, e.state) || strings.Contains(line, e.netns) {
			t.Errorf("leftover mount: %s", line)
		}
	}
}

func destroyCgroup(t testing.TB, path string) {
	m, err := manager.New(&cgroups.Cgroup{Path: path, Resources: &cgroups.Resources{SkipDevices: true}})
	if err != nil {
		t.Errorf("cleanup cgroup %s: %v", path, err)
		return
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("cleanup cgroup %s: %v", path, err)
	}
	for _, p := range m.GetPaths() {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("leftover cgroup %s", p)
		}
	}
}

// config returns a Config for the test layer running testapp with args.
func (e *testEnv) config(id string, args ...string) Config {
	return Config{
		ID:           id,
		Hostname:     "shoal-" + id,
		NetNSPath:    e.netns,
		CgroupParent: e.cgroup,
		Lower:        []string{testLayer},
		Args:         append([]string{"/testapp"}, args...),
		LogPath:      filepath.Join(e.logDir, id+".log"),
	}
}

func (e *testEnv) start(t testing.TB, cfg Config) *Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.r.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts a container and waits for it to exit; it returns the state and the log text.
func (e *testEnv) run(t testing.TB, cfg Config) (State, string) {
	t.Helper()
	c := e.start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st, readLogText(t, c.LogPath())
}

func readLogText(t testing.TB, path string) string {
	t.Helper()
	var b bytes.Buffer
	if err := ReadLog(context.Background(), path, LogOptions{}, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ownerRequest is what the test sends to an owner process (the test binary re-executed with
// ownerEnv set) on its stdin; the owner starts containers like a daemon would and is then
// SIGKILLed.
type ownerRequest struct {
	State      string   `json:"state"`
	ShimCgroup string   `json:"shimCgroup"`
	Configs    []Config `json:"configs"`
}

func runOwner() int {
	var req ownerRequest
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r, err := NewRunner(req.State, WithShimCgroup(req.ShimCgroup))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, cfg := range req.Configs {
		c, err := r.Start(context.Background(), cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("started %s %d\n", c.ID(), c.PID())
	}
	fmt.Println("ready")
	select {} // until SIGKILLed
}

// startOwner runs an owner process that starts cfgs, and returns the PIDs it reported.
func startOwner(t *testing.T, e *testEnv, cfgs ...Config) (*exec.Cmd, map[string]int) {
	t.Helper()
	// On stdin, not in the environment, which the owner's shims inherit: the configs may hold
	// secrets that tests look for.
	req, _ := json.Marshal(ownerRequest{State: e.r.root, ShimCgroup: e.shimCg, Configs: cfgs})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), ownerEnv+"=1")
	cmd.Stdin = bytes.NewReader(req)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pids := map[string]int{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var id string
		var pid int
		if _, err := fmt.Sscanf(sc.Text(), "started %s %d", &id, &pid); err == nil {
			pids[id] = pid
		}
		if sc.Text() == "ready" {
			return cmd, pids
		}
	}
	t.Fatalf("owner process ended before starting its containers")
	return nil, nil
}
