package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// podinfoModule is the public repository github.com/stefanprodan/podinfo at a fixed commit, as
// the Go module proxy serves it (its tags are not valid module versions, so it is named by a
// pseudo-version). Its kustomize/ directory is what Flux's getting-started guide deploys.
const podinfoModule = "github.com/stefanprodan/podinfo@v1.8.1-0.20250910200901-e86405a8674e"

// podinfoSource downloads the podinfo module and returns its directory (in the module cache,
// read-only).
func podinfoSource(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", podinfoModule)
	cmd.Dir = t.TempDir() // outside this module: the download must not touch go.mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); err != nil || jerr != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s\n%s\n(the test needs the Go module proxy, as building Shoal does)", podinfoModule, err, mod.Error, out)
	}
	return mod.Dir
}

// podinfoImage builds podinfo and podcli from src as podinfo's Dockerfile does (static, CGO off)
// and lays them out as its image does: /home/app/podinfo and ./ui in the working directory
// /home/app, /usr/local/bin/podcli, user app. It writes the image as a docker archive tagged ref.
func podinfoImage(t *testing.T, src, ref string) string {
	t.Helper()
	bin := t.TempDir()
	for _, c := range []string{"podinfo", "podcli"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(bin, c), "./cmd/"+c)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s of %s: %v\n%s", c, podinfoModule, err, out)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, content []byte) {
		typ := byte(tar.TypeReg)
		if strings.HasSuffix(name, "/") {
			typ = tar.TypeDir
		}
		hdr := &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: int64(len(content)), Format: tar.FormatPAX}
		if strings.HasPrefix(name, "home/app") {
			hdr.Uid, hdr.Gid = 100, 101
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, d := range []string{"etc/", "tmp/", "home/", "home/app/", "usr/", "usr/local/", "usr/local/bin/"} {
		add(d, 0o755, nil)
	}
	add("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\napp:x:100:101:Linux User,,,:/home/app:/sbin/nologin\n"))
	add("etc/group", 0o644, []byte("root:x:0:\napp:x:101:app\n"))
	add("home/app/podinfo", 0o755, read(filepath.Join(bin, "podinfo")))
	add("usr/local/bin/podcli", 0o755, read(filepath.Join(bin, "podcli")))
	err := filepath.WalkDir(filepath.Join(src, "ui"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			add(path.Join("home/app", filepath.ToSlash(rel))+"/", 0o755, nil)
			return nil
		}
		add(path.Join("home/app", filepath.ToSlash(rel)), 0o644, read(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goarch()
	cf.Config = v1.Config{Cmd: []string{"./podinfo"}, WorkingDir: "/home/app", User: "app",
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "podinfo.tar")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	return file
}

func goarch() string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		return "amd64"
	}
	return strings.TrimSpace(string(out))
}

const podinfoClient = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: client
spec:
  selector:
    matchLabels: {app: client}
  template:
    metadata:
      labels: {app: client}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: localhost/e2e/app:v1
`

// TestPublicPodinfo converges a public repository's application, unchanged, on two real nodes:
// podinfo's kustomize/ directory (a Deployment without replicas, a HorizontalPodAutoscaler with
// minReplicas 2, a Service), running podinfo built from that same repository. Its pods pass
// their exec probes (podcli in the image's PATH), the Service spreads requests over both pods
// by name through the cluster's DNS, the autoscaler reads the pods' CPU, and reverting the commit
// removes it all again.
func TestPublicPodinfo(t *testing.T) {
	needRoot(t)
	src := podinfoSource(t)
	files := map[string]string{}
	dir := filepath.Join(src, "kustomize")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files["apps/podinfo/"+e.Name()] = string(b)
	}
	ref := regexp.MustCompile(`image: (\S+)`).FindStringSubmatch(files["apps/podinfo/deployment.yaml"])
	if ref == nil {
		t.Fatalf("no image in podinfo's kustomize/deployment.yaml:\n%s", files["apps/podinfo/deployment.yaml"])
	}
	img := podinfoImage(t, src, ref[1])

	c := newLANCluster(t, 2)
	for _, n := range c.nodes {
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.dataDir, "images", "import", "podinfo.tar"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first := c.repo.commit("a client", map[string]string{"client.yaml": podinfoClient})
	c.startAll()
	c.waitAllConverged(t, first, 2*time.Minute)
	sha := c.repo.commit("deploy podinfo's kustomize directory", files)
	c.waitAllConverged(t, sha, 3*time.Minute)
	n1 := c.nodes[0]

	var pods []lanPod
	waitUntil(t, "the autoscaler's two podinfo pods Ready", 3*time.Minute, func() bool {
		all, err := n1.lanPods()
		if err != nil {
			return false
		}
		pods = pods[:0]
		for _, p := range all {
			if strings.HasPrefix(p.Name, "podinfo-") {
				pods = append(pods, p)
			}
		}
		return len(pods) == 2 && pods[0].Ready && pods[1].Ready
	})
	var client lanPod
	waitUntil(t, "the client pod", time.Minute, func() bool {
		all, _ := n1.lanPods()
		for _, p := range all {
			if strings.HasPrefix(p.Name, "client-") && p.Ready {
				client = p
				return true
			}
		}
		return false
	})
	cn := c.node(t, client.Node)

	// podinfo answers GET / with JSON holding the pod's hostname, its pod name.
	from := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for tries := 0; len(from) < 2 || tries < 6; tries++ {
		if time.Now().After(deadline) {
			t.Fatalf("GET http://podinfo:9898/ from %s: answers came from %v only, want %s and %s", client.Name, keys(from), pods[0].Name, pods[1].Name)
		}
		out, err := cn.exec(client.Name, "/app", "get", "http://podinfo:9898/")
		var info struct {
			Hostname string `json:"hostname"`
			Version  string `json:"version"`
		}
		if err != nil || json.Unmarshal([]byte(out), &info) != nil || info.Hostname == "" {
			t.Logf("GET http://podinfo:9898/ from %s: %v\n%s", client.Name, err, out)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		from[info.Hostname] = true
	}
	for _, p := range pods {
		if !from[p.Name] {
			t.Errorf("no answer from %s; answers came from %v", p.Name, keys(from))
		}
	}

	var hpa string
	waitUntil(t, "the autoscaler to read the pods' CPU", 2*time.Minute, func() bool {
		out, err := n1.shoal("get", "hpa")
		hpa = out
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || len(lines) != 2 {
			return false
		}
		f := strings.Fields(lines[1])
		return len(f) >= 7 && f[0] == "podinfo" && f[1] == "Deployment/podinfo" && !strings.Contains(lines[1], "unknown") && f[len(f)-1] == "2"
	})

	t.Logf("podinfo pods %v answered by name; shoal get hpa:\n%s", pods, hpa)

	git(t, c.repo.work, "revert", "--no-edit", "HEAD")
	git(t, c.repo.work, "push", "-q", "origin", "main")
	reverted := c.repo.head()
	c.waitAllConverged(t, reverted, 2*time.Minute)
	waitUntil(t, "the podinfo pods to go", 2*time.Minute, func() bool {
		all, err := n1.lanPods()
		if err != nil {
			return false
		}
		for _, p := range all {
			if strings.HasPrefix(p.Name, "podinfo-") {
				return false
			}
		}
		return true
	})
	if out, err := n1.shoal("get", "hpa"); err != nil || strings.Contains(out, "podinfo") {
		t.Errorf("after the revert: shoal get hpa: %v\n%s", err, out)
	}
}
