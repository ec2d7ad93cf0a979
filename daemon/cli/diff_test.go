package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
)

// gitIn runs git in dir.
func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

const kustDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: nginx:1.27
          envFrom:
            - configMapRef:
                name: web-env
`

// TestDiffBuildsKustomizationsFromCommits diffs two commits of an overlay
// whose generator input (an .env file, not YAML) changed: the diff is read
// from git objects, not from the work tree, and shows the new hashed name.
func TestDiffBuildsKustomizationsFromCommits(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base/kustomization.yaml": "resources: [deployment.yaml]\nconfigMapGenerator:\n- name: web-env\n  envs: [web.env]\n",
		"base/deployment.yaml":    kustDeployment,
		"base/web.env":            "MODE=one\n",
		"prod/kustomization.yaml": "resources: [../base]\nnamePrefix: prod-\nimages: [{name: nginx, newTag: \"1.28\"}]\n",
	})
	gitIn(t, dir, "init", "-q", "-b", "main")
	gitIn(t, dir, "add", ".")
	gitIn(t, dir, "commit", "-qm", "one")
	if err := os.WriteFile(filepath.Join(dir, "base", "web.env"), []byte("MODE=two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "commit", "-qam", "two")
	// Not committed: the diff must not see it.
	if err := os.WriteFile(filepath.Join(dir, "base", "web.env"), []byte("MODE=dirty\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := run(t, "diff", "--repo", dir, "--path", "prod", "HEAD~1", "HEAD")
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out, errOut)
	}
	for _, want := range []string{"(added)", "(removed: pruned when applied)", "~ Deployment default/prod-web (changed)", "image: nginx:1.28", "prod-web-env-"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "dirty") {
		t.Errorf("the diff read the work tree:\n%s", out)
	}
	code, _, errOut = run(t, "diff", "--repo", dir, "--path", "nowhere", "HEAD~1", "HEAD")
	if code != ExitFailure || !strings.Contains(errOut, `has no directory "nowhere"`) {
		t.Errorf("missing --path: exit %d, stderr %q", code, errOut)
	}
}

// bigConfigMap renders a ConfigMap whose one value is about 1 MiB of short
// lines, with every every-th line changed when changed is set.
func bigConfigMap(lines, every int, changed bool) []string {
	var b strings.Builder
	for i := range lines {
		if changed && i%every == 0 {
			fmt.Fprintf(&b, "line %06d changed\n", i)
			continue
		}
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	cm := &manifests.ConfigMap{TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: manifests.ObjectMeta{Name: "big", Namespace: "default"}, Data: map[string]string{"data.txt": b.String()}}
	y, err := manifests.Marshal([]manifests.Object{cm}, "yaml")
	if err != nil {
		panic(err)
	}
	return strings.Split(string(y), "\n")
}

// TestLineDiffOfAMebibyteIsBounded diffs two renderings of a 1 MiB
// ConfigMap that differ in 1 line of 100: the memory it allocates stays
// linear in the input (an LCS table would need n×m cells, gigabytes).
func TestLineDiffOfAMebibyteIsBounded(t *testing.T) {
	const lines = 90000 // 12 bytes each: about 1 MiB
	a, b := bigConfigMap(lines, 100, false), bigConfigMap(lines, 100, true)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out := lineDiff(a, b)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	changes := 0
	for _, l := range out {
		if strings.HasPrefix(l, "+ ") {
			changes++
		}
	}
	if changes != lines/100 {
		t.Errorf("%d lines added, want %d", changes, lines/100)
	}
	// The inputs are about 2 × 1 MiB; an n×m table would be 90000² cells.
	if limit := uint64(256 << 20); alloc > limit {
		t.Errorf("diffing allocated %d MiB, more than %d MiB", alloc>>20, limit>>20)
	}
	t.Logf("diff of %d lines with %d changes allocated %.1f MiB", lines, changes, float64(alloc)/(1<<20))
}

func BenchmarkLineDiffMebibyte(b *testing.B) {
	x, y := bigConfigMap(90000, 100, false), bigConfigMap(90000, 100, true)
	b.ReportAllocs()
	for b.Loop() {
		lineDiff(x, y)
	}
}

func TestLineDiff(t *testing.T) {
	for _, tt := range []struct {
		a, b []string
		want []string
	}{
		{[]string{"a", "b", "c"}, []string{"a", "x", "c"}, []string{"  a", "- b", "+ x", "  c"}},
		{nil, []string{"a"}, []string{"+ a"}},
		{[]string{"a", ""}, []string{"a"}, []string{"  a", "- "}},
		{[]string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "x"},
			[]string{"  9", "  10", "  11", "- 12", "+ x"}},
		{[]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, []string{"x", "b", "c", "d", "e", "f", "g", "h", "i", "y"},
			[]string{"- a", "+ x", "  b", "  c", "  d", "...", "  g", "  h", "  i", "- j", "+ y"}},
	} {
		if got := lineDiff(tt.a, tt.b); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}
