package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/runtime/imagetest"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const examples = "../../examples/hello"

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != ExitOK || !strings.Contains(out, "shoal ") || !strings.Contains(out, "commit: ") || !strings.Contains(out, "go: go1") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
	code, out, _ = run(t, "version", "-o", "json")
	var v map[string]string
	if code != ExitOK || json.Unmarshal([]byte(out), &v) != nil || v["goVersion"] == "" {
		t.Fatalf("version -o json: code %d, out %q", code, out)
	}
}

func TestValidateExample(t *testing.T) {
	code, out, errOut := run(t, "validate", examples)
	if code != ExitOK {
		t.Fatalf("validate %s: exit %d, stderr:\n%s", examples, code, errOut)
	}
	if strings.TrimSpace(out) != "3 objects in 3 files" {
		t.Errorf("summary %q, want %q", out, "3 objects in 3 files")
	}
}

func TestRenderExample(t *testing.T) {
	code, out, errOut := run(t, "render", examples, "-o", "json")
	if code != ExitOK {
		t.Fatalf("render: exit %d, stderr:\n%s", code, errOut)
	}
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Spec map[string]any `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("render -o json is not JSON: %v\n%s", err, out)
	}
	if list.Kind != "List" || len(list.Items) != 3 {
		t.Fatalf("render: kind %q with %d items, want a List of 3", list.Kind, len(list.Items))
	}
	for _, it := range list.Items {
		if it.Metadata.Namespace != "default" {
			t.Errorf("%s %s: namespace %q, want the default applied", it.Kind, it.Metadata.Name, it.Metadata.Namespace)
		}
		if it.Kind == "Deployment" {
			if _, ok := it.Spec["revisionHistoryLimit"]; !ok {
				t.Errorf("Deployment rendered without defaults: %v", it.Spec)
			}
		}
	}
	code, out, _ = run(t, "render", examples)
	if code != ExitOK || !strings.Contains(out, "kind: Deployment") || !strings.Contains(out, "\n---\n") {
		t.Errorf("render -o yaml: exit %d, out:\n%s", code, out)
	}
}

const goodDeployment = `apiVersion: apps/v1
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
`

func TestValidateBadInputs(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // a regexp that one stderr line must match
	}{
		{"unknown field", map[string]string{"web.yaml": strings.Replace(goodDeployment, "          image: nginx:1.27\n", "          image: nginx:1.27\n          imagePolicy: Always\n", 1)},
			`^web\.yaml:17: spec\.template\.spec\.containers\[0\]: unknown field "imagePolicy"`},
		{"duplicate key", map[string]string{"web.yaml": strings.Replace(goodDeployment, "  name: web\n", "  name: web\n  name: web2\n", 1)},
			`^web\.yaml:5: metadata: duplicate key "name" \(first at line 4\)`},
		{"duplicate object", map[string]string{"a.yaml": goodDeployment, "b.yaml": goodDeployment},
			`^b\.yaml:\d+: .*duplicate Deployment default/web.*a\.yaml:\d+`},
		{"unsupported kind", map[string]string{"ingress.yaml": "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: db\n"},
			`^ingress\.yaml:2: .*Ingress.*supported kinds: ClusterRole, .*Deployment, .*StatefulSet`},
		{"kubernetes field not supported yet", map[string]string{"web.yaml": strings.Replace(goodDeployment, "    spec:\n      containers:", "    spec:\n      priorityClassName: high\n      containers:", 1)},
			`^web\.yaml:14: spec\.template\.spec\.priorityClassName: supported by Kubernetes, not by Shoal yet`},
		{"service account not in the commit", map[string]string{"web.yaml": strings.Replace(goodDeployment, "    spec:\n      containers:", "    spec:\n      serviceAccountName: webapp\n      containers:", 1)},
			`^web\.yaml:14: spec\.template\.spec\.serviceAccountName: ServiceAccount "webapp" is not in namespace "default" of this commit; add it \(kind: ServiceAccount\) or use "default"$`},
		{"helm template", map[string]string{"templates/web.yaml": strings.Replace(goodDeployment, "nginx:1.27", "{{ .Values.image }}", 1)},
			"^templates/web\\.yaml:16: looks like a Helm template: render it with `helm template` and commit the output$"},
		{"yaml error on the first line", map[string]string{"web.yaml": "x: - a\n"},
			`^web\.yaml:1: invalid YAML: `},
		{"malformed yaml", map[string]string{"web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n"},
			`^web\.yaml:\d+: `},
		{"bad quantity", map[string]string{"web.yaml": strings.Replace(goodDeployment, "          image: nginx:1.27\n", "          image: nginx:1.27\n          resources:\n            limits:\n              memory: 12ZB\n", 1)},
			`^web\.yaml:19: spec\.template\.spec\.containers\[0\]\.resources\.limits\[memory\]: invalid quantity "12ZB"`},
		{"selector does not match template", map[string]string{"web.yaml": strings.Replace(goodDeployment, "        app: web\n    spec:", "        app: other\n    spec:", 1)},
			`^web\.yaml:\d+: spec\.(selector|template\.metadata\.labels).*`},
		{"alias bomb", map[string]string{"bomb.yaml": aliasBomb()},
			`^bomb\.yaml:\d+: YAML aliases expand to more than \d+ nodes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			t.Chdir(dir)
			code, out, errOut := run(t, "validate")
			if code != ExitFailure {
				t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out, errOut)
			}
			re := regexp.MustCompile(tt.want)
			for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
				if re.MatchString(line) {
					return
				}
			}
			t.Errorf("no stderr line matches %q:\n%s", tt.want, errOut)
		})
	}
}

// aliasBomb fits the schema — 200 containers, each an alias of one with 200 arguments — so only
// the limit on alias expansion stops it.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\nspec:\n  containers:\n")
	b.WriteString("  - &c {name: c, image: i, args: [&a lol" + strings.Repeat(", *a", 199) + "]}\n")
	b.WriteString(strings.Repeat("  - *c\n", 199))
	return b.String()
}

func TestValidateWarnings(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"web.yaml": goodDeployment,
		"rbac.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`,
	})
	t.Chdir(dir)
	for _, cmd := range []string{"validate", "render"} {
		code, out, errOut := run(t, cmd)
		if code != ExitOK {
			t.Fatalf("%s: exit %d, stderr:\n%s", cmd, code, errOut)
		}
		want := `rbac.yaml:1: warning: Role "reader" has no effect in Shoal: Role only configures access to the Kubernetes API, which Shoal does not have` + "\n"
		if errOut != want {
			t.Errorf("%s: stderr %q, want %q", cmd, errOut, want)
		}
		if cmd == "validate" && strings.TrimSpace(out) != "2 objects in 2 files, 1 warning" {
			t.Errorf("summary %q", out)
		}
		if cmd == "render" && strings.Contains(out, "warning") {
			t.Errorf("render printed the warning on stdout:\n%s", out)
		}
	}
}

func TestValidateSymlinkAndEscape(t *testing.T) {
	dir := writeFiles(t, map[string]string{"real/web.yaml": goodDeployment})
	if err := os.Symlink(filepath.Join(dir, "real", "web.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(dir, "real", "up")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "validate", dir)
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1; stderr %q", code, errOut)
	}
	for _, want := range []string{"link.yaml: ", "symbolic link", filepath.Join("real", "up") + ": "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestValidateFilesAndDirsTogether(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a/web.yaml": goodDeployment, "b.yaml": goodDeployment})
	code, _, errOut := run(t, "validate", filepath.Join(dir, "a"), filepath.Join(dir, "b.yaml"))
	if code != ExitFailure || !strings.Contains(errOut, "duplicate Deployment default/web") {
		t.Fatalf("exit %d, want 1 with the duplicate across paths named; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(errOut, filepath.Join(dir, "a", "web.yaml")) || !strings.Contains(errOut, filepath.Join(dir, "b.yaml")) {
		t.Errorf("both places should be named as given on the command line:\n%s", errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "--no-such-flag"},
		{"render", "-o", "xml", examples},
		{"no-such-command"},
		{"version", "extra"},
	} {
		code, _, errOut := run(t, args...)
		if code != ExitUsage {
			t.Errorf("shoal %v: exit %d, want 2; stderr %q", args, code, errOut)
		}
	}
	code, _, errOut := run(t, "validate", "/no/such/dir")
	if code != ExitFailure || !strings.Contains(errOut, "/no/such/dir") {
		t.Errorf("missing path: exit %d, stderr %q; want 1 naming the path", code, errOut)
	}
}

func TestImageImportAndList(t *testing.T) {
	dataDir := t.TempDir()
	archive := filepath.Join(t.TempDir(), "hello.tar")
	imagetest.WriteDockerArchive(t, imagetest.TestAppImage(t), "localhost/shoal/hello:v1", archive)

	code, out, errOut := run(t, "image", "import", "--data-dir", dataDir, archive)
	if code != ExitOK || !strings.Contains(out, "imported localhost/shoal/hello:v1 ") {
		t.Fatalf("image import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = run(t, "image", "ls", "--data-dir", dataDir)
	if code != ExitOK || !strings.Contains(out, "localhost/shoal/hello:v1") || !strings.Contains(out, "true") {
		t.Fatalf("image ls: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = run(t, "image", "import", "--data-dir", dataDir, filepath.Join(t.TempDir(), "missing.tar"))
	if code != ExitFailure || !strings.Contains(errOut, "missing.tar") {
		t.Errorf("import of a missing file: exit %d, stderr %q", code, errOut)
	}
}

func TestDiff(t *testing.T) {
	dir := writeFiles(t, map[string]string{"web.yaml": goodDeployment, "gone.yaml": strings.Replace(goodDeployment, "name: web\n", "name: gone\n", 1)})
	gitc := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitc("init", "-q", "-b", "main")
	gitc("add", ".")
	gitc("commit", "-qm", "one")
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(strings.Replace(goodDeployment, "image: nginx:1.27", "image: nginx:1.28", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "gone.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitc("add", "-A")
	gitc("commit", "-qm", "two")

	code, out, errOut := run(t, "diff", "--repo", dir, "HEAD~1", "HEAD")
	if code != ExitFailure {
		t.Fatalf("diff with changes: exit %d, want 1; stderr %q", code, errOut)
	}
	for _, want := range []string{"+ ConfigMap default/cm (added)", "- Deployment default/gone (removed", "~ Deployment default/web (changed)"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "    -       - image: nginx:1.27\n    +       - image: nginx:1.28\n") {
		t.Errorf("diff output lacks the image change as - then +:\n%s", out)
	}
	code, out, _ = run(t, "diff", "--repo", dir, "HEAD", "HEAD")
	if code != ExitOK || strings.TrimSpace(out) != "no changes" {
		t.Errorf("diff of a commit with itself: exit %d, %q", code, out)
	}
	code, _, errOut = run(t, "diff", "--repo", dir, "HEAD", "no-such-branch")
	if code != ExitFailure || !strings.Contains(errOut, "no-such-branch") {
		t.Errorf("diff to a missing revision: exit %d, %q", code, errOut)
	}
}
