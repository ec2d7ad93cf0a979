package gitsync

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// BenchmarkLocalCommitSeen measures how long after `git commit` returns in
// a local repository the Syncer announces the new head (fsnotify, debounce,
// fetch). Reported as ms/commit; the commit itself is not timed.
func BenchmarkLocalCommitSeen(b *testing.B) {
	up := newUpstream(b, "", map[string]string{"a.yaml": configMap("a")})
	s := newSyncer(b, Config{URL: "file://" + up})
	start(b, s)
	waitHead(b, s, runGit(b, up, "rev-parse", "HEAD"), 10*time.Second)
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sha := commitFiles(b, up, map[string]string{"a.yaml": configMap("a" + strconv.Itoa(i))}, "change")
		begin := time.Now()
		b.StartTimer()
		waitHead(b, s, sha, 10*time.Second)
		total += time.Since(begin)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/commit")
}

// BenchmarkTreeLoad measures loading a commit's tree of 50 manifests with
// the manifests loader through Tree.
func BenchmarkTreeLoad(b *testing.B) {
	files := map[string]string{}
	for i := range 50 {
		files["apps/cm"+strconv.Itoa(i)+".yaml"] = configMap("cm" + strconv.Itoa(i))
	}
	up := newUpstream(b, "", files)
	s := newSyncer(b, Config{URL: up})
	start(b, s)
	head := runGit(b, up, "rev-parse", "HEAD")
	waitHead(b, s, head, 10*time.Second)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fsys, err := s.Tree(ctx, head)
		if err != nil {
			b.Fatal(err)
		}
		set, err := manifests.LoadFS(ctx, fsys, ".", manifests.LoadOptions{})
		if err != nil || len(set.Objects) != 50 {
			b.Fatalf("LoadFS: %v", err)
		}
	}
}
