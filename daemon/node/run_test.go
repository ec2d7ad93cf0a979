package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/runtime/libct"
)

// lockedBuffer is a log that the daemon's goroutines write to and the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runTestConfig is a one-node cluster that opens no port and leaves the host's network alone:
// its store member serves on a socket in the data dir, pods get loopback only. The node is
// reset when the test ends.
func runTestConfig(t *testing.T) (Config, *lockedBuffer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the runtime makes cgroups")
	}
	if err := libct.CheckSeccomp(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	for _, args := range [][]string{{"init", "-q", "-b", "main", repo},
		{"-C", repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "--allow-empty", "-m", "empty"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	logs := &lockedBuffer{}
	cfg := Config{Name: "run-" + fmt.Sprintf("%06x", rand.IntN(1<<24)), DataDir: filepath.Join(dir, "data"),
		Repo: "file://" + repo, Ref: "main", Poll: time.Second, Socket: filepath.Join(dir, "shoal.sock"),
		Net: NetConfig{Mode: "none"}, LeaseTTL: 2 * time.Second, NodeLostGrace: time.Minute,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	cfg.CgroupParent = "/shoal-test-" + cfg.Name + "/node"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := Reset(ctx, cfg.DataDir, cfg.CgroupParent, time.Second, true, slog.New(slog.DiscardHandler)); err != nil {
			t.Errorf("reset: %v", err)
		}
	})
	return cfg, logs
}

// runNode runs the node in the background; the returned function stops it and returns what
// Run returned, failing the test when Run does not return in time.
func runNode(t *testing.T, cfg Config) (done <-chan error, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- Run(ctx, cfg) }()
	t.Cleanup(cancel)
	return ch, func() error {
		cancel()
		select {
		case err := <-ch:
			return err
		case <-time.After(time.Minute):
			t.Fatal("Run did not return a minute after its context ended")
			return nil
		}
	}
}

// waitMaster waits until the node's API says the node is the cluster's master and has applied
// the repository's commit.
func waitMaster(t *testing.T, cfg Config, done <-chan error) {
	t.Helper()
	c, err := client.New(client.Config{Socket: cfg.Socket})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before the node served: %v", err)
		default:
		}
		var st cluster.Status
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Get(ctx, "/v1/status", nil, &st)
		cancel()
		if err == nil && st.Master == cfg.Name && st.Applied != nil && len(st.Nodes) == 1 {
			return
		}
		last = fmt.Sprintf("%+v, %v", st, err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the node did not become master with the commit applied: last status %s", last)
}

// A node started in-process serves its API, leads its cluster and, when its context ends,
// stops everything it started: Run returns, the socket is gone, and the node starts again
// from its data dir (its store member released the directory).
func TestRunStartsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	cfg, logs := runTestConfig(t)
	for _, start := range []string{"first start", "restart"} {
		done, stop := runNode(t, cfg)
		waitMaster(t, cfg, done)
		if err := stop(); err != nil {
			t.Fatalf("%s: Run = %v, want nil after its context ended", start, err)
		}
		if _, err := os.Stat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the API socket is left after the stop: %v", start, err)
		}
		if !strings.Contains(logs.String(), "stopping; pods keep running") {
			t.Errorf("%s: no stop in the log", start)
		}
	}
	if n := strings.Count(logs.String(), "new cluster"); n != 1 {
		t.Errorf("%d new clusters in the log, want 1: the restart is the same cluster", n)
	}
}

// A configuration error found late, once the API socket serves and the node's background
// parts run, stops all of them and is returned.
func TestRunReturnsALateConfigurationError(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	cfg, _ := runTestConfig(t)
	cfg.APIListen = "127.0.0.1:0" // without its certificate, key and token
	done, stop := runNode(t, cfg)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "--api-listen needs --api-tls-cert") {
			t.Fatalf("Run = %v, want the --api-listen error", err)
		}
	case <-time.After(2 * time.Minute):
		_ = stop()
		t.Fatal("Run did not return the --api-listen error")
	}
	if _, err := os.Stat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the API socket is left: %v", err)
	}
}
