package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/revision"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

const claimYAML = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`

// claimDeploymentYAML is a Deployment of one pod that mounts the claim "data".
func claimDeploymentYAML(image string) string {
	return strings.Replace(deploymentYAML("db", 1, image), "          args: [\"serve\", \"8080\"]\n",
		"          args: [\"serve\", \"8080\"]\n          volumeMounts: [{name: data, mountPath: /data}]\n"+
			"      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]\n", 1)
}

// TestClaimVolumes: a claim binds to the node of its first pod, which gets the claim's volume;
// the pods that replace it get the same volume; a volume that went missing holds new pods
// Pending; a claim removed from git has its volume deleted on its node.
func TestClaimVolumes(t *testing.T) {
	c := newTestCluster(t)
	one := c.git.commit("", "db with a claim", map[string]string{"pvc.yaml": claimYAML, "db.yaml": claimDeploymentYAML("registry.local/app:v1")})
	c.push(one)
	s := c.waitFor("the claim bound and its pod running", func(s *Snapshot) bool {
		return s.Converged == one && s.Claims["default/data"].Node == "n1" && s.Status().Pending == 0
	})
	claim := s.Claims["default/data"]
	if claim.Phase() != manifests.ClaimBound || claim.UID == "" {
		t.Fatalf("claim %+v, want Bound with a UID", claim)
	}
	if len(s.Placements) != 1 || s.Placements[0].Spec.Claims["data"].UID != claim.UID {
		t.Fatalf("placements %+v, want one pod with the claim's volume %s", s.Placements, claim.UID)
	}
	dir := c.volumes.Path(claim.UID)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("the claim's volume %s: %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kept"), []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := s.Placements[0].Spec.UID

	// A new template replaces the pod; the new pod gets the same volume, with its data.
	two := c.git.commit(one, "db: v2", map[string]string{"pvc.yaml": claimYAML, "db.yaml": claimDeploymentYAML("registry.local/app:v2")})
	c.push(two)
	s = c.waitFor("the pod replaced", func(s *Snapshot) bool {
		return s.Converged == two && len(s.Placements) == 1 && s.Placements[0].Spec.UID != first
	})
	if got := s.Placements[0].Spec.Claims["data"].UID; got != claim.UID {
		t.Errorf("the new pod has volume %s, want the claim's %s", got, claim.UID)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "kept")); err != nil || string(b) != "v1" {
		t.Errorf("the volume's data after the pod was replaced: %q, %v", b, err)
	}

	// The volume's directory goes missing: the next pod is held Pending, not given an empty one.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	three := c.git.commit(two, "db: v1", map[string]string{"pvc.yaml": claimYAML, "db.yaml": claimDeploymentYAML("registry.local/app:v1")})
	c.push(three)
	c.waitFor("the new pod held for its missing volume", func(s *Snapshot) bool {
		for _, st := range s.Statuses {
			if st.Status.Reason == ReasonFailedMount && strings.Contains(st.Status.Message, "missing") {
				return true
			}
		}
		return false
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the missing volume was made again (%v): a new empty volume would hide the loss", err)
	}

	// Removed from git, the claim is released once no pod uses it, and its volume deleted.
	four := c.git.commit(three, "remove db", map[string]string{"other.yaml": deploymentYAML("other", 1, "registry.local/app:v1")})
	c.push(four)
	c.waitFor("the claim gone", func(s *Snapshot) bool {
		_, ok := s.Claims["default/data"]
		return s.Converged == four && !ok
	})
	c.waitForWithin("the claim's record deleted on its node", 10*time.Second, func(*Snapshot) bool {
		uids, err := c.volumes.List()
		return err == nil && len(uids) == 0
	})
}

const statefulSetYAML = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {rev: "%s"}}
    spec:
      containers:
        - name: app
          image: registry.local/app:v1
          args: ["serve", "8080"]
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
`

// TestStatefulSetClaims: a StatefulSet's pods are named by ordinal, each with its own claim and
// hostname; a new template replaces them one by one and each keeps its claim's volume.
func TestStatefulSetClaims(t *testing.T) {
	c := newTestCluster(t)
	one := c.git.commit("", "web", map[string]string{"web.yaml": fmt.Sprintf(statefulSetYAML, "1")})
	c.push(one)
	s := c.waitFor("the StatefulSet converged", func(s *Snapshot) bool { return s.Converged == one })
	vols := map[string]string{}
	for _, pl := range s.Placements {
		pod := pl.Spec.Pod
		ord := strings.TrimPrefix(pod.Name, "web-")
		claim := s.Claims["default/data-web-"+ord]
		if pod.Spec.Hostname != pod.Name || pod.Spec.Subdomain != "web" || claim.Node != "n1" || pl.Spec.Claims["data-web-"+ord].UID != claim.UID {
			t.Errorf("pod %s: hostname %q subdomain %q, claim %+v, volumes %+v", pod.Name, pod.Spec.Hostname, pod.Spec.Subdomain, claim, pl.Spec.Claims)
		}
		vols[pod.Name] = claim.UID
	}
	if len(vols) != 2 || vols["web-0"] == "" || vols["web-1"] == "" {
		t.Fatalf("pods %v, want web-0 and web-1 with their claims", vols)
	}
	if st := s.StatefulSets["default/web"]; !st.Complete || st.ReadyReplicas != 2 || st.CurrentRevision != st.UpdateRevision {
		t.Errorf("status %+v, want complete with 2 ready", st)
	}

	two := c.git.commit(one, "web: rev 2", map[string]string{"web.yaml": fmt.Sprintf(statefulSetYAML, "2")})
	c.push(two)
	s = c.waitFor("the rollout", func(s *Snapshot) bool { return s.Converged == two })
	for _, pl := range s.Placements {
		pod := pl.Spec.Pod
		if pod.Annotations["rev"] != "2" || pl.Spec.Claims["data-"+pod.Name].UID != vols[pod.Name] {
			t.Errorf("after the rollout, pod %s: rev %q, volumes %+v, want rev 2 and volume %s", pod.Name, pod.Annotations["rev"], pl.Spec.Claims, vols[pod.Name])
		}
	}
	if out, err := s.ObjectList("StatefulSet", Filter{Namespace: "default", Selector: manifests.Everything()}); err != nil || len(out.Items) != 1 {
		t.Errorf("list statefulsets: %v %+v", err, out)
	}
}

// TestStatefulSetRolloutAcrossFailover: the master that leads is stopped in the middle of a
// StatefulSet's rollout and another takes over. At no moment do two pods of one ordinal exist,
// and the rollout completes with each pod on its claim.
func TestStatefulSetRolloutAcrossFailover(t *testing.T) {
	var logs syncBuffer
	logger := func(node string) *slog.Logger {
		return slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("master", node)
	}
	c := newTestCluster(t, func(m *MasterConfig) { m.Logger = logger("n1") })
	c.waitFor("n1 leading", func(s *Snapshot) bool { return s.Leader == "n1" })
	other := NewMaster(MasterConfig{Node: "n2", Store: c.st, Git: c.git, Logger: logger("n2")})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c.ctx.Err() == nil {
			lead, err := c.st.Campaign(c.ctx, "/shoal/master", "n2", 2*time.Second)
			if err != nil {
				return
			}
			_ = other.Run(c.ctx, lead)
		}
	}()
	t.Cleanup(func() { c.cancel(); <-done })

	// Watch every placement as it is written: one pod per ordinal, ever.
	var stoppedAt atomic.Value
	stoppedAt.Store("")
	var mu sync.Mutex
	var twice []string
	watchCtx, stopWatch := context.WithCancel(c.ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			s, err := c.backend.Snapshot(watchCtx)
			if err == nil {
				names := map[string]Placement{}
				for _, pl := range s.Placements {
					if pl.Spec.Pod == nil {
						continue
					}
					if first, ok := names[pl.Spec.Pod.Name]; ok {
						mu.Lock()
						twice = append(twice, fmt.Sprintf("%s at rev %d (leader %s, stopped at %s): %s (node %q, terminating %t, rev %s, created %s) and %s (node %q, terminating %t, rev %s, created %s)",
							pl.Spec.Pod.Name, s.Rev, s.Leader, stoppedAt.Load(), first.Spec.UID, first.Node, first.Terminating, first.Spec.Pod.Annotations["rev"], first.Created.Format("05.000"),
							pl.Spec.UID, pl.Node, pl.Terminating, pl.Spec.Pod.Annotations["rev"], pl.Created.Format("05.000")))
						mu.Unlock()
					}
					names[pl.Spec.Pod.Name] = pl
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	one := c.git.commit("", "web", map[string]string{"web.yaml": fmt.Sprintf(statefulSetYAML, "1")})
	c.push(one)
	other.SetHead(revision.Head{SHA: one, SeenAt: time.Now()})
	c.waitFor("the StatefulSet converged", func(s *Snapshot) bool { return s.Converged == one })

	two := c.git.commit(one, "web: rev 2", map[string]string{"web.yaml": fmt.Sprintf(statefulSetYAML, "2")})
	c.push(two)
	other.SetHead(revision.Head{SHA: two, SeenAt: time.Now()})
	c.waitFor("the rollout under way", func(s *Snapshot) bool {
		for _, pl := range s.Placements {
			if pl.Spec.Pod != nil && pl.Spec.Pod.Annotations["rev"] == "2" {
				return true
			}
		}
		return false
	})
	c.stopMaster()
	stoppedAt.Store(time.Now().Format("05.000"))
	s := c.waitForWithin("the rollout done under the other master", 30*time.Second, func(s *Snapshot) bool {
		return s.Leader == "n2" && s.Converged == two
	})
	stopWatch()
	<-watched
	for _, pl := range s.Placements {
		if pl.Spec.Pod.Annotations["rev"] != "2" || pl.Spec.Claims["data-"+pl.Spec.Pod.Name].UID != s.Claims["default/data-"+pl.Spec.Pod.Name].UID {
			t.Errorf("pod %s after the rollout: rev %q, volumes %+v", pl.Spec.Pod.Name, pl.Spec.Pod.Annotations["rev"], pl.Spec.Claims)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(twice) > 0 {
		t.Errorf("two pods of one ordinal at once: %v\n%s", twice, logs.String())
	}
}

// syncBuffer is a bytes.Buffer for several writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDeletePodOnDelete: with updateStrategy OnDelete a new template waits; deleting a pod
// (shoal delete pod) brings it back with the new template and its claim, and the request goes.
func TestDeletePodOnDelete(t *testing.T) {
	c := newTestCluster(t)
	onDelete := func(rev string) string {
		return strings.Replace(fmt.Sprintf(statefulSetYAML, rev), "  replicas: 2\n", "  replicas: 2\n  updateStrategy: {type: OnDelete}\n", 1)
	}
	one := c.git.commit("", "web", map[string]string{"web.yaml": onDelete("1")})
	c.push(one)
	c.waitFor("the StatefulSet converged", func(s *Snapshot) bool { return s.Converged == one })
	two := c.git.commit(one, "web: rev 2", map[string]string{"web.yaml": onDelete("2")})
	c.push(two)
	s := c.waitFor("the new template applied", func(s *Snapshot) bool { return s.Applied.SHA == two })
	var before string
	for _, pl := range s.Placements {
		if pl.Spec.Pod.Name == "web-1" {
			before = pl.Spec.UID
		}
	}
	if err := c.backend.DeletePod(c.ctx, "default", "web-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.backend.DeletePod(c.ctx, "default", "web-9"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("delete of an unknown pod: %v", err)
	}
	s = c.waitFor("web-1 made again with the new template", func(s *Snapshot) bool {
		for _, pl := range s.Placements {
			if pl.Spec.Pod.Name == "web-1" && pl.Spec.UID != before && pl.Spec.Pod.Annotations["rev"] == "2" && !pl.Terminating {
				return true
			}
		}
		return false
	})
	for _, pl := range s.Placements {
		if pl.Spec.Pod.Name == "web-0" && pl.Spec.Pod.Annotations["rev"] != "1" {
			t.Errorf("web-0 was replaced too (rev %q): OnDelete replaces only what is deleted", pl.Spec.Pod.Annotations["rev"])
		}
	}
	c.waitFor("the request removed", func(*Snapshot) bool {
		kvs, _, err := store.List[DeletionRecord](c.ctx, c.st, deletionsPrefix)
		return err == nil && len(kvs) == 0
	})
}
