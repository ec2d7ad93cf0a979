package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func deployment(name string, replicas int, version string, extra string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: localhost/e2e/app:v1
          args: ["serve", "8080"]
          env: [{name: VERSION, value: "%[3]s"}]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 1
%[4]s`, name, replicas, version, extra)
}

// TestCommitConvergeScaleRollPruneRevert is the user's loop on one node: commit, converge,
// scale, roll out a new version, remove a Deployment, revert.
func TestCommitConvergeScaleRollPruneRevert(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	sha := repo.commit("web: 2 replicas", map[string]string{"web.yaml": deployment("web", 2, "v1", ""), "extra.yaml": deployment("extra", 1, "v1", "")})
	n := startNode(t, repo.httpURL)
	n.waitConverged(sha, 90*time.Second)
	if pods := n.pods(); len(pods) != 3 {
		t.Fatalf("%d pods after the first commit, want 3: %+v", len(pods), pods)
	}

	// Logs and exec reach the pod's containers.
	pod := n.pods()[0].Name
	logs, err := n.shoal("logs", pod)
	if err != nil || !strings.Contains(logs, "serving on :8080") {
		t.Errorf("logs of %s: %v %q", pod, err, logs)
	}
	out, err := n.shoal("exec", pod, "--", "/app", "serve", "no-such-port")
	if err == nil || !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "unknown port") {
		t.Errorf("exec of a failing command: %v %q; want its exit code 1 and its stderr", err, out)
	}

	// Scale up.
	sha = repo.commit("web: 4 replicas", map[string]string{"web.yaml": deployment("web", 4, "v1", "")})
	n.waitConverged(sha, 60*time.Second)
	if got := countPrefix(n.pods(), "web-"); got != 4 {
		t.Fatalf("%d web pods, want 4", got)
	}

	// Rolling update: never fewer than replicas - maxUnavailable ready.
	before := n.pods()
	sha = repo.commit("web: v2", map[string]string{"web.yaml": deployment("web", 4, "v2", "")})
	minReady := 4
	deadline := time.Now().Add(90 * time.Second)
	for n.status().Converged != sha {
		if time.Now().After(deadline) {
			t.Fatal("rolling update did not converge in 90 s")
		}
		ready := 0
		for _, p := range n.pods() {
			if strings.HasPrefix(p.Name, "web-") && p.Ready {
				ready++
			}
		}
		minReady = min(minReady, ready)
		time.Sleep(50 * time.Millisecond)
	}
	if minReady < 3 {
		t.Errorf("during the rolling update only %d web pods were Ready; maxUnavailable 1 allows no fewer than 3", minReady)
	}
	after := n.pods()
	for _, p := range after {
		for _, b := range before {
			if strings.HasPrefix(p.Name, "web-") && p.UID == b.UID {
				t.Errorf("pod %s of the old version survived the rollout", p.Name)
			}
		}
	}

	// Prune: the extra Deployment goes.
	sha = repo.commit("remove extra", map[string]string{"extra.yaml": ""})
	n.waitConverged(sha, 60*time.Second)
	n.waitFor("extra pods gone", 30*time.Second, func() bool { return countPrefix(n.pods(), "extra-") == 0 })

	// Revert the removal: extra comes back.
	git(t, repo.work, "revert", "--no-edit", "HEAD")
	git(t, repo.work, "push", "-q", "origin", "main")
	sha = repo.head()
	n.waitConverged(sha, 60*time.Second)
	if got := countPrefix(n.pods(), "extra-"); got != 1 {
		t.Errorf("%d extra pods after the revert, want 1", got)
	}
	out, err = n.shoal("history")
	if err != nil || !strings.Contains(out, `Revert "remove extra"`) {
		t.Errorf("history lacks the revert: %v\n%s", err, out)
	}
}

func countPrefix(pods []podInfo, prefix string) int {
	n := 0
	for _, p := range pods {
		if strings.HasPrefix(p.Name, prefix) {
			n++
		}
	}
	return n
}

// TestBadCommitsAreRejectedWhole sends broken commits through a git daemon: each is refused
// whole, status and history show file:line, running pods are untouched; a force-push backwards
// is refused; the next good commit is applied.
func TestBadCommitsAreRejectedWhole(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	url := repo.serveGitDaemon()
	good := repo.commit("web: 2 replicas", map[string]string{"web.yaml": deployment("web", 2, "v1", "")})
	n := startNode(t, url)
	n.waitConverged(good, 90*time.Second)
	uids := map[string]bool{}
	for _, p := range n.pods() {
		uids[p.UID] = true
	}

	bad := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"malformed YAML", map[string]string{"web.yaml": deployment("web", 3, "v1", ""), "broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n"}, "broken.yaml:"},
		{"unknown field", map[string]string{"web.yaml": deployment("web", 3, "v1", ""), "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndatta: {}\n"}, `cm.yaml:5: unknown field "datta"`},
		{"duplicate object", map[string]string{"web.yaml": deployment("web", 3, "v1", ""), "copy.yaml": deployment("web", 1, "v9", "")}, "duplicate Deployment default/web"},
	}
	for _, b := range bad {
		// Each bad commit also changes replicas: nothing of it may be applied.
		git(t, repo.work, "reset", "-q", "--hard", good)
		sha := repo.commitForce("bad: "+b.name, b.files)
		n.waitFor("rejection of "+b.name, 30*time.Second, func() bool {
			st := n.status()
			return st.LastRejected != nil && st.LastRejected.SHA == sha
		})
		st := n.status()
		if !strings.Contains(strings.Join(st.LastRejected.Reasons, "\n"), b.want) {
			t.Errorf("%s: reasons %q, want one with %q", b.name, st.LastRejected.Reasons, b.want)
		}
		if st.Applied == nil || st.Applied.SHA != good {
			t.Errorf("%s: the applied commit moved", b.name)
		}
		out, _ := n.shoal("history")
		if !strings.Contains(out, b.want) {
			t.Errorf("%s: history does not show %q:\n%s", b.name, b.want, out)
		}
		for _, p := range n.pods() {
			if !uids[p.UID] {
				t.Errorf("%s: a pod was created from a rejected commit: %s", b.name, p.Name)
			}
		}
	}

	// A good commit after the bad ones is applied.
	git(t, repo.work, "reset", "-q", "--hard", good)
	next := repo.commitForce("web: 3 replicas", map[string]string{"web.yaml": deployment("web", 3, "v1", "")})
	n.waitConverged(next, 60*time.Second)

	// Force-push back to the older commit: refused, nothing changes.
	git(t, repo.work, "reset", "-q", "--hard", good)
	git(t, repo.work, "push", "-q", "--force", "origin", "main")
	n.waitFor("refusal of the force-push", 30*time.Second, func() bool {
		st := n.status()
		return st.LastRejected != nil && st.LastRejected.SHA == good
	})
	if st := n.status(); !strings.Contains(strings.Join(st.LastRejected.Reasons, " "), "does not descend from the applied commit") || st.Applied.SHA != next {
		t.Errorf("force-push: %+v", st.LastRejected)
	}
	if got := countPrefix(n.pods(), "web-"); got != 3 {
		t.Errorf("%d web pods after the refused force-push, want 3", got)
	}
}

// commitForce commits and force-pushes (after a local reset).
func (r *gitRepo) commitForce(msg string, files map[string]string) string {
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	git(r.t, r.work, "add", "-A")
	git(r.t, r.work, "commit", "-q", "-m", msg)
	git(r.t, r.work, "push", "-q", "--force", "origin", "main")
	return r.head()
}

// TestFaults: the git server goes away and comes back; the daemon is SIGKILLed and restarted
// (pods untouched); a pod killed by hand is back within 2 s.
func TestFaults(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	url := repo.serveGitDaemon()
	sha := repo.commit("web: 2 replicas", map[string]string{"web.yaml": deployment("web", 2, "v1", "")})
	n := startNode(t, url)
	n.waitConverged(sha, 90*time.Second)

	// Git server down: nothing changes; back: catches up.
	repo.stopGitDaemon()
	queued := repo.commit("web: 3 replicas", map[string]string{"web.yaml": deployment("web", 3, "v1", "")})
	time.Sleep(3 * time.Second)
	if got := countPrefix(n.pods(), "web-"); got != 2 {
		t.Fatalf("%d web pods while the git server is down, want the 2 of the last good commit", got)
	}
	repo.startGitDaemon()
	n.waitConverged(queued, 90*time.Second)

	// Daemon SIGKILL and restart: same processes, same restart counts.
	pidsBefore := appPIDs(t)
	podsBefore := n.pods()
	n.kill()
	time.Sleep(time.Second)
	n.start()
	n.waitFor("the API after a restart", 60*time.Second, func() bool { _, err := n.shoal("status"); return err == nil })
	n.waitConverged(queued, 60*time.Second)
	time.Sleep(2 * time.Second)
	pidsAfter := appPIDs(t)
	for pid := range pidsBefore {
		if !pidsAfter[pid] {
			t.Errorf("app process %d is gone after the daemon restart", pid)
		}
	}
	after := n.pods()
	if len(after) != len(podsBefore) {
		t.Errorf("%d pods after the restart, %d before", len(after), len(podsBefore))
	}
	for _, b := range podsBefore {
		for _, a := range after {
			if a.UID == b.UID && a.Restarts != b.Restarts {
				t.Errorf("pod %s restart count %d → %d across the daemon restart", a.Name, b.Restarts, a.Restarts)
			}
		}
	}

	// Self-heal: kill a pod's process by hand.
	var victim int
	for pid := range pidsAfter {
		victim = pid
		break
	}
	if victim == 0 {
		t.Fatal("no app process found")
	}
	if err := syscallKill(victim); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n.waitFor("the killed pod back", 30*time.Second, func() bool {
		ready := 0
		for _, p := range n.pods() {
			if p.Ready {
				ready++
			}
		}
		return ready == 3 && !appPIDs(t)[victim]
	})
	t.Logf("a killed container was Ready again after %v", time.Since(start).Round(10*time.Millisecond))
}

// TestCorruptStoreIsAClearError: a damaged etcd data dir stops the daemon with a clear error and
// kills no pod.
func TestCorruptStoreIsAClearError(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	sha := repo.commit("web: 1 replica", map[string]string{"web.yaml": deployment("web", 1, "v1", "")})
	n := startNode(t, repo.httpURL)
	n.waitConverged(sha, 90*time.Second)
	pids := appPIDs(t)
	n.kill()
	// Damage the store's database.
	dbs, _ := filepath.Glob(filepath.Join(n.dataDir, "store", "member", "snap", "db"))
	if len(dbs) != 1 {
		t.Fatalf("no etcd database under %s", n.dataDir)
	}
	if err := os.WriteFile(dbs[0], []byte("garbage, not a bbolt database"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		n.cmd = nil
		if err == nil {
			t.Fatal("the daemon started on a corrupt store")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon neither failed nor reported the corrupt store in 60 s")
	}
	n.logMu.Lock()
	log := n.log.String()
	n.logMu.Unlock()
	if !strings.Contains(log, "store") || !strings.Contains(log, filepath.Join(n.dataDir, "store")) {
		t.Errorf("the error does not name the store's data dir:\n%s", lastLines(log, 10))
	}
	for pid := range pids {
		if !appPIDs(t)[pid] {
			t.Errorf("app process %d died because of the corrupt store", pid)
		}
	}

	// A missing store dir is an error too, not a new empty cluster that would remove the pods.
	if err := os.RemoveAll(filepath.Join(n.dataDir, "store")); err != nil {
		t.Fatal(err)
	}
	n.logMu.Lock()
	n.log.Reset()
	n.logMu.Unlock()
	n.start()
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		n.cmd = nil
		if err == nil {
			t.Fatal("the daemon started without its store")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon neither failed nor reported the missing store in 60 s")
	}
	n.logMu.Lock()
	log = n.log.String()
	n.logMu.Unlock()
	if !strings.Contains(log, "is missing, but this node had a store") {
		t.Errorf("no clear error for the missing store:\n%s", lastLines(log, 10))
	}
	for pid := range pids {
		if !appPIDs(t)[pid] {
			t.Errorf("app process %d died because of the missing store", pid)
		}
	}
}
