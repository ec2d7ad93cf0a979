package libct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestServeExecSameNetNS(t *testing.T) {
	e := newTestEnv(t)
	srv := e.start(t, e.config("web", "serve", "8080"))
	st, err := srv.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusRunning || st.PID <= 0 || st.PID != srv.PID() {
		t.Fatalf("state = %+v, want running with pid %d", st, srv.PID())
	}
	// Start returns once the init was told to exec; the exec itself may still be under way.
	eventually(t, "the container's pid runs testapp", func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
		return err == nil && strings.Contains(string(cmdline), "testapp")
	})
	// Starting again with the same ID returns the running container.
	again := e.start(t, e.config("web", "serve", "8080"))
	if again.PID() != srv.PID() {
		t.Fatalf("second Start gave pid %d, want %d", again.PID(), srv.PID())
	}
	// A second container in the same netns reaches the first on 127.0.0.1.
	eventually(t, "server up", func() bool {
		return strings.Contains(readLogText(t, srv.LogPath()), "serving on")
	})
	st2, logText := e.run(t, e.config("client", "get", "http://127.0.0.1:8080/"))
	if st2.ExitCode != 0 || !strings.Contains(logText, "shoal-web") {
		t.Fatalf("client: exit %d, log %q; want 0 and the server's hostname shoal-web", st2.ExitCode, logText)
	}
	// An exec probe inside the server container.
	var out bytes.Buffer
	code, err := srv.Exec(context.Background(), ExecConfig{Args: []string{"/testapp", "get", "http://127.0.0.1:8080/healthz"}, Stdout: &out})
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("exec probe: code %d err %v out %q", code, err, out.String())
	}
}

func TestProcessConfig(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name  string
		mod   func(*Config)
		args  []string
		wants []string
	}{
		{"root", nil, []string{"id"}, []string{"uid=0 gid=0 euid=0"}},
		{"numeric user", func(c *Config) { c.User = "65534:65534" }, []string{"id"}, []string{"uid=65534 gid=65534"}},
		{"named user with groups", func(c *Config) { c.User = "nobody"; c.SupplementalGroups = []uint32{1234} },
			[]string{"id"}, []string{"uid=65534 gid=65534", "groups=[50 1234]"}},
		{"env and args", func(c *Config) { c.Env = []string{"FOO=bar baz"} }, []string{"read", "/proc/self/environ"},
			[]string{"FOO=bar baz", "PATH=/usr/local/sbin", "HOME=/root"}},
		{"cwd", func(c *Config) { c.Cwd = "/tmp" }, []string{"write", "relative.txt", "x"}, []string{"ok"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(fmt.Sprintf("pc%d", i), tt.args...)
			if tt.mod != nil {
				tt.mod(&cfg)
			}
			st, logText := e.run(t, cfg)
			if st.ExitCode != 0 {
				t.Fatalf("exit %d, log:\n%s", st.ExitCode, logText)
			}
			for _, w := range tt.wants {
				if !strings.Contains(logText, w) {
					t.Errorf("log %q lacks %q", logText, w)
				}
			}
			if tt.name == "cwd" {
				if _, err := os.Stat(e.r.dir(cfg.ID) + "/upper/tmp/relative.txt"); err != nil {
					t.Errorf("file written relative to cwd /tmp: %v", err)
				}
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		args   []string
		code   int
		reason string
	}{
		{[]string{"exit", "3"}, 3, ReasonError},
		{[]string{"exit", "0"}, 0, ReasonCompleted},
	}
	for i, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			st, _ := e.run(t, e.config(fmt.Sprintf("ex%d", i), tt.args...))
			if st.Status != StatusExited || st.ExitCode != tt.code || st.Reason != tt.reason || st.FinishedAt.IsZero() {
				t.Fatalf("state = %+v, want exited %d %s", st, tt.code, tt.reason)
			}
		})
	}
}

func TestStop(t *testing.T) {
	e := newTestEnv(t)
	t.Run("sigterm", func(t *testing.T) {
		c := e.start(t, e.config("term", "ticker", "1000"))
		// Before its handler is installed, a Go program that is PID 1 of its namespace
		// cannot die from SIGTERM and exits with 2: wait until it runs its main.
		eventually(t, "first tick", func() bool { return strings.Contains(readLogText(t, c.LogPath()), "tick 0") })
		st, err := c.Stop(context.Background(), 20*time.Second)
		if err != nil || st.ExitCode != 0 || st.Signal != 0 {
			t.Fatalf("stop: %+v %v; want exit 0 after SIGTERM", st, err)
		}
	})
	t.Run("sigkill after grace", func(t *testing.T) {
		c := e.start(t, e.config("stubborn", "ignore-term"))
		eventually(t, "signal handler installed", func() bool {
			return strings.Contains(readLogText(t, c.LogPath()), "ignoring SIGTERM")
		})
		begin := time.Now()
		st, err := c.Stop(context.Background(), 300*time.Millisecond)
		if err != nil || st.Signal != 9 || st.ExitCode != 137 {
			t.Fatalf("stop: %+v %v; want killed by SIGKILL", st, err)
		}
		if time.Since(begin) < 300*time.Millisecond {
			t.Fatalf("SIGKILL came before the grace period ended")
		}
	})
}

func TestExec(t *testing.T) {
	e := newTestEnv(t)
	c := e.start(t, e.config("exec", "sleep", "inf"))
	ctx := context.Background()
	var out bytes.Buffer
	code, err := c.Exec(ctx, ExecConfig{Args: []string{"/testapp", "read", "/dev/stdin"}, Stdin: strings.NewReader("hello stdin"), Stdout: &out})
	if err != nil || code != 0 || out.String() != "hello stdin" {
		t.Fatalf("exec read stdin: code %d err %v out %q", code, err, out.String())
	}
	code, err = c.Exec(ctx, ExecConfig{Args: []string{"/testapp", "exit", "5"}})
	if err != nil || code != 5 {
		t.Fatalf("exec exit 5: code %d err %v", code, err)
	}
	out.Reset()
	code, err = c.Exec(ctx, ExecConfig{Args: []string{"/testapp", "id"}, User: "nobody", Stdout: &out})
	if err != nil || code != 0 || !strings.Contains(out.String(), "uid=65534") {
		t.Fatalf("exec as nobody: code %d err %v out %q", code, err, out.String())
	}
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.Exec(tctx, ExecConfig{Args: []string{"/testapp", "sleep", "inf"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exec with cancelled ctx: %v, want deadline exceeded", err)
	}
	if _, err := c.Exec(ctx, ExecConfig{Args: []string{"/nope"}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("exec of a missing command: %v", err)
	}
}

func TestMissingCommand(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.config("missing")
	cfg.Args = []string{"no-such-command", "x"}
	_, err := e.r.Start(context.Background(), cfg)
	if !errors.Is(err, ErrCreateContainer) || !strings.Contains(err.Error(), "no-such-command") {
		t.Fatalf("Start: %v; want ErrCreateContainer naming the command", err)
	}
	if _, err := e.r.Load(context.Background(), "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load after failed start: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(e.r.dir("missing")); !os.IsNotExist(err) {
		t.Fatalf("state dir left after failed start: %v", err)
	}
}

func TestOwnerKilled(t *testing.T) {
	e := newTestEnv(t)
	ticker := e.config("ticker", "ticker", "50")
	crash := e.config("crash", "crash", "1", "7")
	owner, pids := startOwner(t, e, ticker, crash)
	if err := owner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = owner.Wait()

	ctx := context.Background()
	c, err := e.r.Load(ctx, "ticker")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.State(ctx)
	if err != nil || st.Status != StatusRunning || st.PID != pids["ticker"] {
		t.Fatalf("after owner died: %+v %v; want running with pid %d", st, err, pids["ticker"])
	}
	before := strings.Count(readLogText(t, c.LogPath()), "tick")
	eventually(t, "logs continue", func() bool {
		return strings.Count(readLogText(t, c.LogPath()), "tick") > before+3
	})

	cr, err := e.r.Load(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err = cr.Wait(wctx)
	if err != nil || st.Status != StatusExited || st.ExitCode != 7 || st.PID != pids["crash"] {
		t.Fatalf("crash container: %+v %v; want exited with 7", st, err)
	}
	all, err := e.r.List(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("List: %d containers, %v", len(all), err)
	}
}
