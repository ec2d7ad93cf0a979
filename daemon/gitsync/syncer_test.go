package gitsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// transports serves the upstream repository at dir (a directory named
// shoal-upstream) in each supported way and returns its URL.
var transports = []struct {
	name  string
	serve func(t *testing.T, dir string) string
}{
	{"file-url", func(t *testing.T, dir string) string { return "file://" + dir }},
	{"abs-path", func(t *testing.T, dir string) string { return dir }},
	{"http-backend", func(t *testing.T, dir string) string {
		return serveHTTP(t, filepath.Dir(dir)).url(filepath.Base(dir))
	}},
	{"git-daemon", func(t *testing.T, dir string) string {
		return serveDaemon(t, filepath.Dir(dir)).url(filepath.Base(dir))
	}},
}

func TestCloneAndTrigger(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			up := newUpstream(t, "", map[string]string{"apps/web.yaml": configMap("web")})
			first := runGit(t, up, "rev-parse", "HEAD")
			s := newSyncer(t, Config{URL: tr.serve(t, up)})
			if _, err := s.Last(); !errors.Is(err, ErrNoHead) {
				t.Fatalf("Last before Run = %v, want ErrNoHead", err)
			}
			start(t, s)
			h := waitHead(t, s, first, 10*time.Second)
			if h.SeenAt.IsZero() {
				t.Error("Head.SeenAt is zero")
			}
			if last, err := s.Last(); err != nil || last != h {
				t.Errorf("Last = %v, %v; want %v", last, err, h)
			}
			info, err := s.Commit(context.Background(), first)
			if err != nil {
				t.Fatal(err)
			}
			if info.SHA != first || info.Message != "initial" || info.Author != "Shoal Test" || info.Email != "test@shoal.invalid" || info.Time.IsZero() {
				t.Errorf("Commit = %+v", info)
			}

			second := commitFiles(t, up, map[string]string{"apps/db.yaml": configMap("db")}, "add db\n\nwith a body")
			s.Trigger()
			waitHead(t, s, second, 10*time.Second)
			info, err = s.Commit(context.Background(), second)
			if err != nil || info.Message != "add db" {
				t.Errorf("Commit(second) = %+v, %v; want message %q", info, err, "add db")
			}
		})
	}
}

func TestPollSeesCommit(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	srv := serveHTTP(t, filepath.Dir(up))
	s := newSyncer(t, Config{URL: srv.url(filepath.Base(up)), Poll: 100 * time.Millisecond})
	start(t, s)
	waitHead(t, s, runGit(t, up, "rev-parse", "HEAD"), 10*time.Second)
	next := commitFiles(t, up, map[string]string{"b.yaml": configMap("b")}, "b")
	waitHead(t, s, next, 10*time.Second)
}

func TestLocalRepositoryWatched(t *testing.T) {
	for _, bare := range []bool{false, true} {
		name := "worktree"
		if bare {
			name = "bare"
		}
		t.Run(name, func(t *testing.T) {
			work := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
			repo := work
			if bare {
				repo = filepath.Join(t.TempDir(), "shoal-bare.git")
				runGit(t, work, "clone", "-q", "--bare", work, repo)
				runGit(t, work, "remote", "add", "origin", repo)
			}
			s := newSyncer(t, Config{URL: "file://" + repo}) // Poll is an hour
			start(t, s)
			waitHead(t, s, runGit(t, work, "rev-parse", "HEAD"), 10*time.Second)
			for i := range 3 {
				sha := commitFiles(t, work, map[string]string{"a.yaml": configMap("a" + strings.Repeat("x", i+1))}, "change")
				if bare {
					runGit(t, work, "push", "-q", "origin", "main")
				}
				begin := time.Now()
				waitHead(t, s, sha, 2*time.Second)
				t.Logf("commit seen after %v", time.Since(begin))
			}
		})
	}
}

func TestTagRef(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	tagged := runGit(t, up, "rev-parse", "HEAD")
	runGit(t, up, "tag", "-a", "-m", "release", "v1.0")
	commitFiles(t, up, map[string]string{"b.yaml": configMap("b")}, "after the tag")
	for _, ref := range []string{"tag:v1.0", "refs/tags/v1.0"} {
		t.Run(ref, func(t *testing.T) {
			s := newSyncer(t, Config{URL: up, Ref: ref})
			start(t, s)
			waitHead(t, s, tagged, 10*time.Second)
		})
	}
}

func TestMissingRef(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	errs := make(chan error, 10)
	s := newSyncer(t, Config{URL: up, Ref: "release", OnFetch: func(err error, _ time.Duration) {
		select {
		case errs <- err:
		default:
		}
	}})
	start(t, s)
	err := <-errs
	if err == nil || !strings.Contains(err.Error(), "refs/heads/release not found") {
		t.Fatalf("fetch error = %v, want the branch named as not found", err)
	}
}

// TestServerDown stops the server: fetches fail and back off, Last stays,
// and the syncer catches up when the server is back.
func TestServerDown(t *testing.T) {
	type server interface {
		start()
		stop()
	}
	cases := []struct {
		name  string
		serve func(t *testing.T, dir string) (string, server)
	}{
		{"http-backend", func(t *testing.T, dir string) (string, server) {
			h := serveHTTP(t, filepath.Dir(dir))
			return h.url(filepath.Base(dir)), h
		}},
		{"git-daemon", func(t *testing.T, dir string) (string, server) {
			d := serveDaemon(t, filepath.Dir(dir))
			return d.url(filepath.Base(dir)), d
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
			first := runGit(t, up, "rev-parse", "HEAD")
			url, srv := tc.serve(t, up)
			var mu sync.Mutex
			var fails, oks int
			var failTimes []time.Time
			s := newSyncer(t, Config{URL: url, OnFetch: func(err error, _ time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fails++
					failTimes = append(failTimes, time.Now())
				} else {
					oks++
				}
			}})
			start(t, s)
			h1 := waitHead(t, s, first, 10*time.Second)

			srv.stop()
			second := commitFiles(t, up, map[string]string{"b.yaml": configMap("b")}, "b")
			s.Trigger()
			deadline := time.Now().Add(10 * time.Second)
			for {
				mu.Lock()
				n := fails
				mu.Unlock()
				if n >= 6 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("only %d failed fetches while the server is down", n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if last, err := s.Last(); err != nil || last != h1 {
				t.Fatalf("Last while the server is down = %v, %v; want %v", last, err, h1)
			}
			mu.Lock()
			// Backoff: the gaps between failures grow (20, 40, 80, 160,
			// 200 ms ±10 % in tests).
			gap1 := failTimes[1].Sub(failTimes[0])
			gap5 := failTimes[5].Sub(failTimes[4])
			mu.Unlock()
			if gap5 <= gap1 {
				t.Errorf("retries do not back off: gaps %v then %v", gap1, gap5)
			}

			srv.start()
			waitHead(t, s, second, 10*time.Second)
		})
	}
}

func TestForcePushAndHistory(t *testing.T) {
	tmp := t.TempDir()
	bare := filepath.Join(tmp, "shoal-up.git")
	runGit(t, tmp, "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(tmp, "work")
	runGit(t, tmp, "clone", "-q", bare, work)
	runGit(t, work, "checkout", "-q", "-b", "main")
	c1 := commitFiles(t, work, map[string]string{"a.yaml": configMap("a")}, "c1")
	runGit(t, work, "push", "-q", "origin", "main")

	s := newSyncer(t, Config{URL: "file://" + bare})
	start(t, s)
	waitHead(t, s, c1, 10*time.Second)

	// A side branch merged into main: c1 - c2 - M, c1 - f1 - f2 - M.
	c2 := commitFiles(t, work, map[string]string{"b.yaml": configMap("b")}, "c2")
	runGit(t, work, "checkout", "-q", "-b", "feature", c1)
	f1 := commitFiles(t, work, map[string]string{"f.yaml": configMap("f")}, "f1")
	f2 := commitFiles(t, work, map[string]string{"g.yaml": configMap("g")}, "f2")
	runGit(t, work, "checkout", "-q", "main")
	runGit(t, work, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
	m := runGit(t, work, "rev-parse", "HEAD")
	runGit(t, work, "push", "-q", "origin", "main")
	waitHead(t, s, m, 5*time.Second)

	ctx := context.Background()
	between, err := s.Between(ctx, c1, m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range between {
		got = append(got, c.SHA)
	}
	want := []string{c2, f1, f2, m}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Between(c1, M) = %v, want %v (c2, f1, f2, M)", got, want)
	}
	if len(between) == 4 && len(between[3].Parents) != 2 {
		t.Errorf("merge commit parents = %v", between[3].Parents)
	}
	all, err := s.Between(ctx, "", m)
	if err != nil || len(all) != 5 || all[0].SHA != c1 {
		t.Errorf("Between(\"\", M) = %d commits, first %v, %v; want 5 starting with c1", len(all), all, err)
	}
	if none, err := s.Between(ctx, m, c2); err != nil || len(none) != 0 {
		t.Errorf("Between(M, c2) = %v, %v; want none", none, err)
	}

	ancestry := []struct {
		a, d string
		want bool
	}{
		{c1, m, true}, {f1, m, true}, {c2, m, true}, {m, m, true},
		{m, c1, false}, {f2, c2, false}, {c2, f2, false},
	}
	for _, tc := range ancestry {
		got, err := s.IsAncestor(ctx, tc.a, tc.d)
		if err != nil || got != tc.want {
			t.Errorf("IsAncestor(%.7s, %.7s) = %v, %v; want %v", tc.a, tc.d, got, err, tc.want)
		}
	}

	// Force-push main back to c2: the syncer reports it, and IsAncestor
	// lets the caller refuse it.
	runGit(t, work, "reset", "-q", "--hard", c2)
	runGit(t, work, "push", "-q", "--force", "origin", "main")
	waitHead(t, s, c2, 5*time.Second)
	if fwd, err := s.IsAncestor(ctx, m, c2); err != nil || fwd {
		t.Errorf("IsAncestor(M, c2) after force push = %v, %v; want false", fwd, err)
	}

	// An unrelated history.
	runGit(t, work, "checkout", "-q", "--orphan", "other")
	o1 := commitFiles(t, work, map[string]string{"o.yaml": configMap("o")}, "unrelated")
	runGit(t, work, "push", "-q", "--force", "origin", "other:main")
	waitHead(t, s, o1, 5*time.Second)
	if fwd, err := s.IsAncestor(ctx, c2, o1); err != nil || fwd {
		t.Errorf("IsAncestor(c2, unrelated) = %v, %v; want false", fwd, err)
	}

	// Bad input.
	if _, err := s.IsAncestor(ctx, "abc", m); err == nil {
		t.Error("IsAncestor accepted a short SHA")
	}
	missing := strings.Repeat("0", 40)
	if _, err := s.Commit(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Commit(unknown) = %v, want ErrNotFound", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Between(cancelled, "", m); !errors.Is(err, context.Canceled) {
		t.Errorf("Between with a cancelled context = %v", err)
	}
}

func TestCorruptCacheRecloned(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	head := runGit(t, up, "rev-parse", "HEAD")
	cache := filepath.Join(t.TempDir(), "shoal-git")
	ctx, cancel := context.WithCancel(context.Background())
	s1 := newSyncer(t, Config{URL: up, CacheDir: cache})
	done := make(chan error)
	go func() { done <- s1.Run(ctx) }()
	waitHead(t, s1, head, 10*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	corruptions := []struct {
		name    string
		corrupt func(t *testing.T)
	}{
		{"packs", func(t *testing.T) {
			packs, _ := filepath.Glob(filepath.Join(cache, "objects", "pack", "*"))
			if len(packs) == 0 {
				t.Fatal("no packs in the cache")
			}
			for _, p := range packs {
				if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"config", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(cache, "config"), []byte("[[[ not a config"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			tc.corrupt(t)
			s := newSyncer(t, Config{URL: up, CacheDir: cache})
			start(t, s)
			waitHead(t, s, head, 10*time.Second)
			if _, err := s.Tree(context.Background(), head); err != nil {
				t.Errorf("Tree after re-clone: %v", err)
			}
		})
	}

	t.Run("foreign-directory", func(t *testing.T) {
		dir := t.TempDir()
		keep := filepath.Join(dir, "precious")
		if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(Config{URL: up, CacheDir: dir})
		if err == nil || !strings.Contains(err.Error(), "not a Shoal git cache") {
			t.Fatalf("New with a foreign cache dir = %v", err)
		}
		if _, err := os.Stat(keep); err != nil {
			t.Fatalf("foreign file removed: %v", err)
		}
	})
}

func TestMaxPackSize(t *testing.T) {
	// Incompressible data, so that the pack is as large as the blob.
	data := make([]byte, 64<<10)
	seed := uint32(1)
	for i := range data {
		seed = seed*1664525 + 1013904223
		data[i] = byte(seed >> 24)
	}
	up := newUpstream(t, "", map[string]string{"blob.bin": string(data)})
	errs := make(chan error, 10)
	s := newSyncer(t, Config{URL: up, MaxPackSize: 16 << 10, OnFetch: func(err error, _ time.Duration) {
		select {
		case errs <- err:
		default:
		}
	}})
	start(t, s)
	err := <-errs
	if !errors.Is(err, ErrPackTooLarge) {
		t.Fatalf("fetch error = %v, want ErrPackTooLarge", err)
	}
	if _, err := s.Last(); !errors.Is(err, ErrNoHead) {
		t.Errorf("Last after a refused pack = %v, want ErrNoHead", err)
	}
	left, _ := filepath.Glob(filepath.Join(s.cfg.CacheDir, "shoal-incoming-*"))
	tmp, _ := filepath.Glob(filepath.Join(s.cfg.CacheDir, "objects", "pack", "*"))
	if len(left)+len(tmp) != 0 {
		t.Errorf("refused pack left files behind: %v %v", left, tmp)
	}
}

func TestRunTwice(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	s := newSyncer(t, Config{URL: up})
	start(t, s)
	waitHead(t, s, runGit(t, up, "rev-parse", "HEAD"), 10*time.Second) // the first Run is running
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Run(ctx); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestBackoff(t *testing.T) {
	s := &Syncer{backoffMin: time.Second, backoffMax: 5 * time.Minute}
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {5, 16 * time.Second}, {9, 256 * time.Second}, {10, 5 * time.Minute}, {100, 5 * time.Minute}} {
		got := s.backoff(tc.failures)
		lo, hi := time.Duration(float64(tc.want)*0.9), time.Duration(float64(tc.want)*1.1)
		if got < lo || got > hi {
			t.Errorf("backoff(%d) = %v, want %v ±10 %%", tc.failures, got, tc.want)
		}
	}
}

// TestOfflineStart starts a Syncer on a filled cache while the server is
// down: it announces the cached commit and catches up later.
func TestOfflineStart(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	first := runGit(t, up, "rev-parse", "HEAD")
	d := serveDaemon(t, filepath.Dir(up))
	cache := filepath.Join(t.TempDir(), "shoal-git")
	ctx, cancel := context.WithCancel(context.Background())
	s1 := newSyncer(t, Config{URL: d.url(filepath.Base(up)), CacheDir: cache})
	done := make(chan error)
	go func() { done <- s1.Run(ctx) }()
	waitHead(t, s1, first, 10*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	d.stop()
	s2 := newSyncer(t, Config{URL: d.url(filepath.Base(up)), CacheDir: cache})
	start(t, s2)
	waitHead(t, s2, first, 10*time.Second)
	if _, err := s2.Tree(context.Background(), first); err != nil {
		t.Errorf("Tree of the cached commit: %v", err)
	}
	second := commitFiles(t, up, map[string]string{"b.yaml": configMap("b")}, "b")
	d.start()
	s2.Trigger()
	waitHead(t, s2, second, 10*time.Second)
}
