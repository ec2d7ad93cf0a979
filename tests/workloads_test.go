package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

func job(name, spec, command string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %[1]s
spec:
%[2]s
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: localhost/e2e/app:v1
          args: %[3]s
`, name, spec, command)
}

// jobsOf returns the node's Jobs by name, with their status.
func (n *node) jobsOf() map[string]manifests.Job {
	n.t.Helper()
	jobs, err := n.jobs()
	if err != nil {
		n.t.Fatal(err)
	}
	return jobs
}

func (n *node) jobs() (map[string]manifests.Job, error) {
	out, err := n.shoal("get", "jobs", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct{ Items []manifests.Job }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("decode jobs: %w\n%s", err, out)
	}
	jobs := map[string]manifests.Job{}
	for _, j := range list.Items {
		jobs[j.Name] = j
	}
	return jobs, nil
}

func jobCondition(j manifests.Job, t manifests.JobConditionType) (manifests.JobCondition, bool) {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == manifests.ConditionTrue {
			return c, true
		}
	}
	return manifests.JobCondition{}, false
}

// TestJobs runs Jobs in real containers: an Indexed Job whose pods see their index, a Job
// that fails past its backoff limit, and one that a pod failure policy fails at once.
func TestJobs(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	indexed := job("shard", "  completions: 3\n  parallelism: 2\n  completionMode: Indexed", `["echo", "index=$(JOB_COMPLETION_INDEX)"]`)
	// A Job's sidecar (an init container with restartPolicy Always) is stopped once the main
	// container has ended, and the pod succeeds.
	sidecar := `apiVersion: batch/v1
kind: Job
metadata:
  name: sidecar
spec:
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      initContainers:
        - name: proxy
          image: localhost/e2e/app:v1
          restartPolicy: Always
          args: ["serve", "9090"]
      containers:
        - name: main
          image: localhost/e2e/app:v1
          args: ["echo", "done"]
`
	sha := repo.commit("shard job", map[string]string{"shard.yaml": indexed, "sidecar.yaml": sidecar})
	n := startNode(t, repo.httpURL)
	t.Cleanup(func() {
		if t.Failed() {
			for _, args := range [][]string{{"get", "pods", "-A", "-o", "wide"}, {"get", "pods", "-o", "yaml"}, {"get", "jobs", "-o", "yaml"}, {"status"}, {"events"}} {
				out, err := n.shoal(args...)
				t.Logf("shoal %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, p := range n.pods() {
				out, err := n.shoal("logs", p.Name)
				t.Logf("shoal logs %s: %v\n%s", p.Name, err, out)
			}
		}
	})
	// A commit's Job converges once it is Complete.
	n.waitConverged(sha, 90*time.Second)
	j := n.jobsOf()["shard"]
	if _, ok := jobCondition(j, manifests.JobComplete); !ok || j.Status.Succeeded != 3 || j.Status.CompletedIndexes != "0-2" {
		t.Fatalf("shard status %+v, want Complete with 3 succeeded, indexes 0-2", j.Status)
	}
	if _, ok := jobCondition(n.jobsOf()["sidecar"], manifests.JobComplete); !ok {
		t.Errorf("the Job with a sidecar is not Complete: %+v", n.jobsOf()["sidecar"].Status)
	}
	var seen []string
	for _, p := range n.pods() {
		if !strings.HasPrefix(p.Name, "shard-") {
			continue
		}
		if p.Phase != "Succeeded" {
			t.Errorf("pod %s is %s, want Succeeded", p.Name, p.Phase)
		}
		logs, err := n.shoal("logs", p.Name)
		if err != nil {
			t.Fatalf("logs of %s: %v", p.Name, err)
		}
		for i := range 3 {
			if strings.HasPrefix(p.Name, fmt.Sprintf("shard-%d-", i)) && strings.Contains(logs, fmt.Sprintf("index=%d", i)) {
				seen = append(seen, p.Name)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("pods that printed their own index: %v, want one per index 0-2", seen)
	}
	out, err := n.shoal("get", "jobs")
	if err != nil || !strings.Contains(out, "Complete") || !strings.Contains(out, "3/3") {
		t.Errorf("shoal get jobs: %v\n%s", err, out)
	}
	out, err = n.shoal("status")
	if err != nil || !regexp.MustCompile(`default/shard +3/3 +0 +0 +Complete`).MatchString(out) {
		t.Errorf("shoal status lacks the Complete Job: %v\n%s", err, out)
	}

	// A Job that keeps failing: the second failure is past backoffLimit 1, 10 s after the first.
	// A pod failure policy fails the other at its first exit 42.
	flaky := job("flaky", "  backoffLimit: 1", `["exit", "3"]`)
	fatal := job("fatal", `  backoffLimit: 5
  podFailurePolicy:
    rules:
      - action: FailJob
        onExitCodes: {operator: In, values: [42]}`, `["exit", "42"]`)
	// And a CronJob every minute.
	cron := `apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  timeZone: Etc/UTC
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: main
              image: localhost/e2e/app:v1
              args: ["echo", "tick"]
`
	repo.commit("failing jobs, a CronJob", map[string]string{"flaky.yaml": flaky, "fatal.yaml": fatal, "cron.yaml": cron})
	n.waitFor("both Jobs failed", 90*time.Second, func() bool {
		jobs := n.jobsOf()
		_, a := jobCondition(jobs["flaky"], manifests.JobFailed)
		_, b := jobCondition(jobs["fatal"], manifests.JobFailed)
		return a && b
	})
	jobs := n.jobsOf()
	if c, _ := jobCondition(jobs["flaky"], manifests.JobFailed); c.Reason != "BackoffLimitExceeded" || jobs["flaky"].Status.Failed != 2 {
		t.Errorf("flaky: %s with %d failed, want BackoffLimitExceeded after 2", c.Reason, jobs["flaky"].Status.Failed)
	}
	if c, _ := jobCondition(jobs["fatal"], manifests.JobFailed); c.Reason != "PodFailurePolicy" || jobs["fatal"].Status.Failed != 1 {
		t.Errorf("fatal: %s with %d failed, want PodFailurePolicy after 1", c.Reason, jobs["fatal"].Status.Failed)
	}
	if got := countPrefix(n.pods(), "flaky-"); got != 2 {
		t.Errorf("%d flaky pods, want its 2 failed pods kept", got)
	}
	events, _ := n.shoal("describe", "job", "flaky")
	if !strings.Contains(events, "BackoffLimitExceeded") {
		t.Errorf("describe job flaky lacks the BackoffLimitExceeded event:\n%s", events)
	}

	// The CronJob's first Job runs at the next whole minute and completes.
	n.waitFor("the CronJob's Job complete", 90*time.Second, func() bool {
		for name, j := range n.jobsOf() {
			if _, ok := jobCondition(j, manifests.JobComplete); ok && strings.HasPrefix(name, "tick-") {
				return true
			}
		}
		return false
	})
	out, err = n.shoal("get", "cronjobs")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || !strings.Contains(lines[1], "* * * * *") || !strings.Contains(lines[1], "Etc/UTC") ||
		strings.HasSuffix(lines[1], "<none>") {
		t.Errorf("shoal get cronjobs: %v\n%s; want the schedule, the time zone and a last schedule time", err, out)
	}

	// Removing the Jobs from git prunes their pods; the completed Job's stay.
	repo.commit("remove failing jobs", map[string]string{"flaky.yaml": "", "fatal.yaml": ""})
	n.waitFor("failed Jobs' pods pruned", 60*time.Second, func() bool {
		pods := n.pods()
		return !slices.ContainsFunc(pods, func(p podInfo) bool {
			return strings.HasPrefix(p.Name, "flaky-") || strings.HasPrefix(p.Name, "fatal-")
		}) && countPrefix(pods, "shard-") == 3 && countPrefix(pods, "tick-") > 0
	})
}

func daemonSet(version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: agent
          image: localhost/e2e/app:v1
          args: ["serve", "8080"]
          env: [{name: VERSION, value: "%s"}]
          readinessProbe:
            httpGet: {path: /healthz, port: 8080}
            periodSeconds: 1
`, version)
}

// TestDaemonSet runs a DaemonSet on a real node: its pod runs on the node, a new template
// replaces it, and the commit converges once the rollout is done.
func TestDaemonSet(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	sha := repo.commit("agent v1", map[string]string{"agent.yaml": daemonSet("v1")})
	n := startNode(t, repo.httpURL)
	n.waitConverged(sha, 90*time.Second)
	pods := n.pods()
	if len(pods) != 1 || !strings.HasPrefix(pods[0].Name, "agent-") || !pods[0].Ready {
		t.Fatalf("pods %+v, want one ready agent pod", pods)
	}
	first := pods[0].UID
	sha = repo.commit("agent v2", map[string]string{"agent.yaml": daemonSet("v2")})
	n.waitConverged(sha, 90*time.Second)
	pods = n.pods()
	if len(pods) != 1 || pods[0].UID == first || !pods[0].Ready {
		t.Fatalf("pods after the rollout %+v, want one new ready agent pod", pods)
	}
	if out, err := n.shoal("status"); err != nil || !regexp.MustCompile(`default/agent +1/1 +1 +1 +complete`).MatchString(out) {
		t.Errorf("shoal status lacks the DaemonSet: %v\n%s", err, out)
	}
	out, err := n.shoal("get", "ds")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || !slices.Equal(strings.Fields(lines[1])[:6], []string{"agent", "1", "1", "1", "1", "1"}) {
		t.Errorf("shoal get ds: %v\n%s", err, out)
	}
}

// TestJobAcrossDaemonRestart kills the daemon while a Job's pods run and end: the restarted
// daemon finds their exit codes, counts each completion once and starts no pod twice.
func TestJobAcrossDaemonRestart(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	sha := repo.commit("batch", map[string]string{"batch.yaml": job("batch", "  completions: 4\n  parallelism: 2", `["sleep", "3"]`)})
	n := startNode(t, repo.httpURL)
	n.waitFor("the Job's first pods running", 60*time.Second, func() bool {
		return n.jobsOf()["batch"].Status.Active == 2
	})
	n.kill()
	time.Sleep(5 * time.Second) // the pods end while the daemon is down
	n.start()
	n.waitConverged(sha, 90*time.Second)
	st := n.jobsOf()["batch"].Status
	if st.Succeeded != 4 || st.Failed != 0 {
		t.Errorf("after the restart: %d succeeded, %d failed; want 4 and 0", st.Succeeded, st.Failed)
	}
	pods := n.pods()
	succeeded := 0
	for _, p := range pods {
		if strings.HasPrefix(p.Name, "batch-") && p.Phase == "Succeeded" {
			succeeded++
		}
	}
	if len(pods) != 4 || succeeded != 4 {
		t.Errorf("%d pods, %d of them Succeeded; want exactly the 4 completions", len(pods), succeeded)
	}
}

const claimManifests = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: seed}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: localhost/e2e/app:v1
          args: [write, /data/seed, hello]
          volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
`

// claimReader is a Deployment that is Ready only once it reads the file the seed Job wrote to the
// claim.
func claimReader(version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: reader}
spec:
  replicas: 1
  selector: {matchLabels: {app: reader}}
  template:
    metadata: {labels: {app: reader}, annotations: {version: "%s"}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: localhost/e2e/app:v1
          args: [serve, "8080"]
          readinessProbe:
            exec: {command: [/app, cat, /data/seed]}
            periodSeconds: 1
          volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
`, version)
}

// TestPersistentVolumeClaim runs a claim on a real node: what a Job's pod writes to it, a
// Deployment's pod reads, through a daemon restart and the pod's replacement; once the claim
// leaves git its volume is deleted.
func TestPersistentVolumeClaim(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	sha := repo.commit("data", map[string]string{"data.yaml": claimManifests, "reader.yaml": claimReader("1")})
	n := startNode(t, repo.httpURL)
	n.waitConverged(sha, 90*time.Second)

	out, err := n.shoal("get", "pvc")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 {
		t.Fatalf("shoal get pvc: %v\n%s", err, out)
	}
	f := strings.Fields(lines[1])
	if len(f) < 6 || f[0] != "data" || f[1] != "Bound" || !strings.HasPrefix(f[2], "pvc-") || f[3] != "64Mi" || f[4] != "RWO" || f[5] != "local-path" {
		t.Fatalf("shoal get pvc:\n%s\nwant data Bound pvc-... 64Mi RWO local-path", out)
	}
	dir := filepath.Join(n.dataDir, "volumes", strings.TrimPrefix(f[2], "pvc-"))
	if b, err := os.ReadFile(filepath.Join(dir, "seed")); err != nil || string(b) != "hello" {
		t.Fatalf("the volume on the node: %q, %v; want the seed Job's hello", b, err)
	}
	first := n.podsNamed("reader-")

	// The daemon restarts and the reader's pod is replaced: the new pod reads the same volume.
	n.kill()
	n.start()
	sha = repo.commit("reader 2", map[string]string{"reader.yaml": claimReader("2")})
	n.waitConverged(sha, 120*time.Second)
	if again := n.podsNamed("reader-"); len(again) != 1 || len(first) != 1 || again[0].UID == first[0].UID || !again[0].Ready {
		t.Fatalf("reader pods %+v after the rollout (before %+v), want one new Ready pod", again, first)
	}

	// The claim leaves git: once its pods are gone, so is its volume.
	sha = repo.commit("no data", map[string]string{"data.yaml": "", "reader.yaml": "", "other.yaml": daemonSet("v1")})
	n.waitConverged(sha, 90*time.Second)
	n.waitFor("the claim's volume deleted", 30*time.Second, func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
	if out, err := n.shoal("get", "pvc"); err != nil || strings.Contains(out, "data") {
		t.Errorf("shoal get pvc after the claim left git: %v\n%s", err, out)
	}
}

// podsNamed returns the node's pods whose names start with prefix.
func (n *node) podsNamed(prefix string) []podInfo {
	var out []podInfo
	for _, p := range n.pods() {
		if strings.HasPrefix(p.Name, prefix) {
			out = append(out, p)
		}
	}
	return out
}

const busyAutoscaled = `apiVersion: apps/v1
kind: Deployment
metadata: {name: busy}
spec:
  selector: {matchLabels: {app: busy}}
  template:
    metadata: {labels: {app: busy}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: localhost/e2e/app:v1
          args: [burn, "8080"]
          resources:
            requests: {cpu: 50m}
            limits: {cpu: 50m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: busy}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}
  maxReplicas: 2
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
`

// TestAutoscalerOnRealUsage scales a Deployment whose pod keeps its CPU limit busy: the node
// measures the pod's cgroup, `shoal top pods` shows it, and the autoscaler, at twice its target,
// adds a pod.
func TestAutoscalerOnRealUsage(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	repo.commit("busy", map[string]string{"busy.yaml": busyAutoscaled})
	n := startNode(t, repo.httpURL)
	var top string
	n.waitFor("shoal top pods to show the busy pod", 90*time.Second, func() bool {
		out, err := n.shoal("top", "pods")
		top = out
		return err == nil && strings.Contains(out, "busy-")
	})
	t.Logf("shoal top pods:\n%s", top)
	n.waitFor("the autoscaler to add a pod, and the pod to start", 2*time.Minute, func() bool {
		pods := n.podsNamed("busy-")
		return len(pods) == 2 && pods[0].Ready && pods[1].Ready
	})
	out, err := n.shoal("get", "hpa")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 {
		t.Fatalf("shoal get hpa: %v\n%s", err, out)
	}
	if f := strings.Fields(lines[1]); len(f) < 7 || f[0] != "busy" || f[1] != "Deployment/busy" || f[len(f)-1] != "2" {
		t.Errorf("shoal get hpa:\n%s\nwant busy Deployment/busy ... 2", out)
	}
	if st, err := n.shoal("status"); err != nil || !strings.Contains(st, "default/busy") {
		t.Errorf("shoal status lacks the autoscaler: %v\n%s", err, st)
	}
}
