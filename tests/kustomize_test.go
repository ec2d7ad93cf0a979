package tests

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The base names an image that does not exist: only the overlay's images
// transformer makes the pods runnable.
const kustBaseDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: localhost/e2e/not-built:v0
          args: ["serve"]
          envFrom:
            - configMapRef: {name: web-config}
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 1
`

func kustOverlay(greeting string) string {
	return `resources:
- ../base
namePrefix: prod-
images:
- name: localhost/e2e/not-built
  newName: localhost/e2e/app
  newTag: v1
patches:
- patch: |
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      replicas: 2
configMapGenerator:
- name: web-config
  behavior: merge
  literals:
  - GREETING=` + greeting + `
`
}

// kustPod is what the test reads of a pod.
type kustPod struct {
	name, image, configMap string
	running                bool
}

func (n *node) kustPods() []kustPod {
	out, err := n.shoal("get", "pods", "-A", "-o", "json")
	if err != nil {
		n.t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Containers []struct {
					Image   string `json:"image"`
					EnvFrom []struct {
						ConfigMapRef struct {
							Name string `json:"name"`
						} `json:"configMapRef"`
					} `json:"envFrom"`
				} `json:"containers"`
			} `json:"spec"`
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		n.t.Fatalf("get pods: %v\n%s", err, out)
	}
	var pods []kustPod
	for _, it := range list.Items {
		p := kustPod{name: it.Metadata.Name, running: it.Status.Phase == "Running"}
		if len(it.Spec.Containers) > 0 {
			p.image = it.Spec.Containers[0].Image
			if len(it.Spec.Containers[0].EnvFrom) > 0 {
				p.configMap = it.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name
			}
		}
		pods = append(pods, p)
	}
	return pods
}

var hashedConfigMap = regexp.MustCompile(`^prod-web-config-[a-z0-9]{10}$`)

// checkKustomized checks that the node runs the overlay: two Running pods of
// prod-web with the overlay's image, reading the generated ConfigMap (hash
// suffix and all) whose greeting they answer with. It returns the
// ConfigMap's name.
func (n *node) checkKustomized(greeting string) string {
	t := n.t
	t.Helper()
	var pods []kustPod
	n.waitFor("two Running prod-web pods", 60*time.Second, func() bool {
		pods = nil
		for _, p := range n.kustPods() {
			if strings.HasPrefix(p.name, "prod-web-") {
				pods = append(pods, p)
			}
		}
		if len(pods) != 2 {
			return false
		}
		for _, p := range pods {
			if !p.running {
				return false
			}
		}
		return pods[0].configMap == pods[1].configMap
	})
	cm := pods[0].configMap
	for _, p := range pods {
		if p.image != "localhost/e2e/app:v1" {
			t.Errorf("pod %s runs %s, want the overlay's localhost/e2e/app:v1", p.name, p.image)
		}
		if !hashedConfigMap.MatchString(p.configMap) {
			t.Errorf("pod %s reads ConfigMap %q, want prod-web-config-<hash>", p.name, p.configMap)
		}
	}
	out, err := n.shoal("get", "configmaps", "-A")
	if err != nil || !strings.Contains(out, cm) {
		t.Errorf("the generated ConfigMap %s is not in the cluster: %v\n%s", cm, err, out)
	}
	out, err = n.shoal("exec", pods[0].name, "--", "/app", "get", "http://127.0.0.1:8080/")
	if err != nil || !strings.HasPrefix(out, greeting+" from ") {
		t.Errorf("pod %s answers %q (%v), want the generated ConfigMap's greeting %q", pods[0].name, out, err, greeting)
	}
	return cm
}

// TestKustomizeOverlayConvergesAndReverts commits a base with an overlay
// (images, a strategic-merge patch, a merged configMapGenerator) to a
// repository the daemon follows at the overlay's directory, changes the
// generator, and reverts.
func TestKustomizeOverlayConvergesAndReverts(t *testing.T) {
	needRoot(t)
	repo := newGitRepo(t)
	first := repo.commit("web: kustomize base and prod overlay", map[string]string{
		"base/kustomization.yaml": "resources:\n- deployment.yaml\nconfigMapGenerator:\n- name: web-config\n  literals:\n  - GREETING=Hello-base\n  - PORT=8080\n",
		"base/deployment.yaml":    kustBaseDeployment,
		"prod/kustomization.yaml": kustOverlay("Hello-prod"),
		// Not part of the overlay's build: never loaded.
		"prod/notes.yaml": "not: [a manifest\n",
	})
	n := startNode(t, repo.httpURL, "--path", "prod")
	n.waitConverged(first, 120*time.Second)
	cm1 := n.checkKustomized("Hello-prod")

	second := repo.commit("web: new greeting", map[string]string{"prod/kustomization.yaml": kustOverlay("Hello-again")})
	n.waitConverged(second, 90*time.Second)
	cm2 := n.checkKustomized("Hello-again")
	if cm2 == cm1 {
		t.Errorf("the generator's input changed but the ConfigMap's name did not: %s", cm1)
	}

	git(t, repo.work, "revert", "--no-edit", "HEAD")
	git(t, repo.work, "push", "-q", "origin", "main")
	reverted := repo.head()
	n.waitConverged(reverted, 90*time.Second)
	if cm := n.checkKustomized("Hello-prod"); cm != cm1 {
		t.Errorf("after the revert the pods read %s, want the first commit's %s", cm, cm1)
	}

	// A bad overlay is refused whole, with the kustomization's line.
	bad := repo.commit("web: broken overlay", map[string]string{"prod/kustomization.yaml": kustOverlay("x") + "- ../missing\n"})
	n.waitFor("rejection of the broken overlay", 30*time.Second, func() bool {
		st := n.status()
		return st.LastRejected != nil && st.LastRejected.SHA == bad
	})
	st := n.status()
	if reasons := strings.Join(st.LastRejected.Reasons, "\n"); !strings.Contains(reasons, "kustomization.yaml:") || st.Applied.SHA != reverted {
		t.Errorf("broken overlay: applied %s, reasons %q", st.Applied.SHA, reasons)
	}
}
