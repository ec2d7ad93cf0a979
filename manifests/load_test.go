package manifests

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const deployWeb = `apiVersion: apps/v1
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
        ports:
        - name: http
          containerPort: 80
`

func loadMap(t *testing.T, files map[string]string) (*Set, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return LoadFS(context.Background(), fsys, ".", LoadOptions{})
}

func errorStrings(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not ErrorList: %v", err, err)
	}
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.Error()
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "unknown field with suggestion",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "        image: nginx:1.27\n",
				"        imagee: nginx:1.27\n        colour: red\n", 1)},
			want: []string{
				`a.yaml:16: spec.template.spec.containers[0]: unknown field "imagee" (did you mean "image"?)`,
				`a.yaml:17: spec.template.spec.containers[0]: unknown field "colour"`,
			},
		},
		{
			name: "duplicate key",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "  name: web\n",
				"  name: web\n  name: web2\n", 1)},
			want: []string{`a.yaml:5: metadata: duplicate key "name" (first at line 4)`},
		},
		{
			name: "duplicate object across files",
			files: map[string]string{
				"a.yaml":     deployWeb,
				"sub/b.yaml": "# the same again\n" + deployWeb,
			},
			want: []string{`sub/b.yaml:2: duplicate Deployment default/web (first defined at a.yaml:1); rename one of them or delete it`},
		},
		{
			name:  "unsupported kind",
			files: map[string]string{"a.yaml": "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: db\n"},
			want:  []string{`a.yaml:2: kind: kind "Ingress" (networking.k8s.io/v1) is not supported by Shoal; supported kinds: ClusterRole, ClusterRoleBinding, ConfigMap, CronJob, DaemonSet, Deployment, HorizontalPodAutoscaler, Job, Namespace, PersistentVolumeClaim, Pod, PodDisruptionBudget, Role, RoleBinding, Secret, Service, ServiceAccount, StatefulSet, StorageClass`},
		},
		{
			name:  "wrong apiVersion",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "apps/v1", "extensions/v1beta1", 1)},
			want:  []string{`a.yaml:1: apiVersion: Deployment is "apps/v1", not "extensions/v1beta1"; write "apiVersion: apps/v1"`},
		},
		{
			name:  "missing kind",
			files: map[string]string{"a.yaml": "---\n# c\napiVersion: v1\nmetadata:\n  name: x\n"},
			want:  []string{`a.yaml:3: kind: missing; every document needs apiVersion and kind, such as "kind: Deployment"`},
		},
		{
			name: "not yet in Kubernetes",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "      containers:\n",
				"      priorityClassName: high\n      affinity:\n        nodeAffinity: {}\n      hostNetwork: true\n      containers:\n", 1)},
			want: []string{
				`a.yaml:14: spec.template.spec.priorityClassName: supported by Kubernetes, not by Shoal yet`,
				`a.yaml:17: spec.template.spec.hostNetwork: supported by Kubernetes, not by Shoal yet`,
			},
		},
		{
			name:  "malformed YAML",
			files: map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n"},
			want:  []string{`a.yaml:5: invalid YAML: did not find expected key`},
		},
		{
			name:  "tab indentation",
			files: map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: x\n"},
			want:  []string{`a.yaml:4: invalid YAML: found character that cannot start any token (indent YAML with spaces, not tabs)`},
		},
		{
			name: "bad quantity",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "        ports:\n",
				"        resources:\n          requests:\n            cpu: 100x\n        ports:\n", 1)},
			want: []string{`a.yaml:19: spec.template.spec.containers[0].resources.requests[cpu]: invalid quantity "100x": unknown suffix "x"; quantities look like 500m, 2, 1.5, 128Mi, 1G or 1e3`},
		},
		{
			name: "request above limit",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "        ports:\n",
				"        resources:\n          limits:\n            memory: 64Mi\n          requests:\n            memory: 1Gi\n        ports:\n", 1)},
			want: []string{`a.yaml:21: spec.template.spec.containers[0].resources.requests[memory]: request 1Gi is more than the limit 64Mi; a request must be at most its limit`},
		},
		{
			name:  "selector does not match template",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "        app: web\n    spec:", "        app: webb\n    spec:", 1)},
			want:  []string{`a.yaml:6: spec.selector: selector "app=web" does not match the template labels (app=webb); the labels under spec.template.metadata.labels must satisfy spec.selector`},
		},
		{
			name: "type mismatch",
			files: map[string]string{"a.yaml": strings.Replace(deployWeb, "spec:\n  selector:",
				"spec:\n  replicas: three\n  selector:", 1)},
			want: []string{`a.yaml:6: spec.replicas: expected an integer, found the string "three"`},
		},
		{
			name:  "number where a string is expected",
			files: map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    version: 1.0\n"},
			want:  []string{`a.yaml:6: metadata.labels[version]: expected a string, found the number 1.0; quote it: "1.0"`},
		},
		{
			name:  "secret base64",
			files: map[string]string{"a.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  ok: aGVsbG8=\n  bad: not base64!\n"},
			want:  []string{`a.yaml:7: data[bad]: value is not valid base64 (illegal base64 data at input byte 3); encode it with base64, or put the plain text under stringData`},
		},
		{
			name: "service target port name not in pods",
			files: map[string]string{
				"a.yaml": deployWeb,
				"b.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n    targetPort: https\n",
			},
			want: []string{`b.yaml:10: spec.ports[0].targetPort: port name "https" is not a port of Deployment default/web, which this Service selects (its ports: http); name a container port "https" or use a number`},
		},
		{
			name: "many errors in one tree",
			files: map[string]string{
				"a.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: Web\nspec:\n  type: ExternalName\n  ports:\n  - port: 80\n    nodePort: 80\n  - port: 81\n",
				"b.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: c\n    image: busybox\n    volumeMounts:\n    - name: missing\n      mountPath: data\n    livenessProbe:\n      httpGet:\n        port: web\n",
			},
			want: []string{
				`a.yaml:4: metadata.name: "Web" is not a DNS-1123 label: use lowercase letters, digits and '-' (such as "my-name")`,
				`a.yaml:6: spec.type: ExternalName is supported by Kubernetes, not by Shoal yet; use ClusterIP, NodePort or LoadBalancer`,
				`a.yaml:8: spec.ports[0].name: required when a Service has more than one port`,
				`a.yaml:9: spec.ports[0].nodePort: may only be set when type is NodePort or LoadBalancer`,
				`a.yaml:10: spec.ports[1].name: required when a Service has more than one port`,
				`b.yaml:6: spec.restartPolicy: "Sometimes" is not one of Always, OnFailure, Never`,
				`b.yaml:11: spec.containers[0].volumeMounts[0].name: no volume named "missing" in the pod; add it under volumes`,
				`b.yaml:12: spec.containers[0].volumeMounts[0].mountPath: must be an absolute path, is "data"`,
				`b.yaml:15: spec.containers[0].livenessProbe.httpGet.port: container "c" has no port named "web"; name it under ports or use a number`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := loadMap(t, tt.files)
			got := errorStrings(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err != nil && set != nil {
				t.Errorf("a failed load returned a set")
			}
		})
	}
}

// billionLaughs is the classic alias bomb: 9^10 "lol"s when expanded.
func billionLaughs(where string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\nspec:\n  containers:\n  - name: c\n    image: busybox\n")
	b.WriteString("    args: &l0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "    l%d: &l%d [", i, i)
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString(where)
	return b.String()
}

// schemaBomb fits the schema: 1,000 containers, each an alias of one with
// 1,000 environment variables, so expanding it visits millions of nodes.
func schemaBomb() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\nspec:\n  containers:\n")
	b.WriteString("  - &c {name: c, image: i, env: [&v {name: A, value: b}")
	b.WriteString(strings.Repeat(", *v", 999))
	b.WriteString("]}\n")
	b.WriteString(strings.Repeat("  - *c\n", 999))
	return b.String()
}

func TestAliasBomb(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"billion laughs in a list of strings", billionLaughs("    command: *l9\n"), []string{
			`bomb.yaml:10: spec.containers[0]: unknown field "l1"`,
			`bomb.yaml:18: spec.containers[0].command[0]: expected a string, found a list`,
		}},
		{"billion laughs in a map", billionLaughs("    workingDir: /\n  nodeSelector: {a: *l9}\n"), []string{
			`bomb.yaml:10: spec.containers[0]: unknown field "l1"`,
			`bomb.yaml:20: spec.nodeSelector[a]: expected a string, found a list`,
		}},
		{"schema-shaped bomb", schemaBomb(), []string{
			`bomb.yaml:7: YAML aliases expand to more than 10000 nodes (LoadOptions.MaxAliasNodes); write the values out instead of nesting aliases`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, errs := DecodeFile("bomb.yaml", []byte(tt.doc), LoadOptions{})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusing the alias bomb took %v", d)
			}
			got := errorStrings(t, errs.Err())
			if len(got) > 20 {
				t.Errorf("%d errors; the bomb was expanded", len(got))
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("errors:\n%s\nwant among them:\n%s", strings.Join(got, "\n"), w)
				}
			}
		})
	}
}

func TestSmallAliasesAllowed(t *testing.T) {
	doc := `apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  labels: &l
    app: web
  annotations: *l
data:
  <<: {a: "1", b: "2"}
  b: "3"
`
	objs, errs := DecodeFile("a.yaml", []byte(doc), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	cm := objs[0].(*ConfigMap)
	if cm.Annotations["app"] != "web" || cm.Data["a"] != "1" || cm.Data["b"] != "3" {
		t.Errorf("aliases and merge keys decoded as %+v %+v", cm.Annotations, cm.Data)
	}
}

func TestSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte(deployWeb), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte(deployWeb), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(context.Background(), dir, LoadOptions{})
	got := errorStrings(t, err)
	want := []string{
		"link.yaml: is a symbolic link; Shoal never follows links in a manifest tree: replace it with the file or directory it points to",
		"linkdir: is a symbolic link; Shoal never follows links in a manifest tree: replace it with the file or directory it points to",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSymlinkInMapFS(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml": {Data: []byte(deployWeb)},
		"b.yaml": {Data: []byte("../../etc/passwd"), Mode: fs.ModeSymlink},
	}
	_, err := LoadFS(context.Background(), fsys, ".", LoadOptions{})
	got := errorStrings(t, err)
	if len(got) != 1 || !strings.HasPrefix(got[0], "b.yaml: is a symbolic link") {
		t.Errorf("errors %q", got)
	}
}

func TestEscapingRoot(t *testing.T) {
	fsys := fstest.MapFS{"a.yaml": {Data: []byte(deployWeb)}}
	for _, root := range []string{"..", "../x", "/etc", "a/../../b"} {
		t.Run(root, func(t *testing.T) {
			_, err := LoadFS(context.Background(), fsys, root, LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), "invalid root") {
				t.Errorf("root %q: error %v", root, err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	big := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  k: \"" + strings.Repeat("x", 2000) + "\"\n"
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  string
	}{
		{"file size", map[string]string{"a.yaml": big}, LoadOptions{MaxFileSize: 1000},
			"a.yaml: file is 2067 bytes, more than the limit of 1000 bytes (LoadOptions.MaxFileSize); split it into smaller files"},
		{"tree size", map[string]string{"a.yaml": big, "b.yaml": big}, LoadOptions{MaxTreeSize: 3000},
			"b.yaml: the manifest tree is more than 3000 bytes (LoadOptions.MaxTreeSize) at this file, 4134 bytes so far; split the repository or raise the limit"},
		{"documents", map[string]string{"a.yaml": strings.Repeat("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n", 3)}, LoadOptions{MaxDocuments: 2},
			"a.yaml:12: more than 2 documents in one file (LoadOptions.MaxDocuments); split it into smaller files"},
		{"objects", map[string]string{"a.yaml": deployWeb, "b.yaml": strings.Replace(deployWeb, "name: web", "name: web2", 1)}, LoadOptions{MaxObjects: 1},
			"b.yaml: the manifest tree has more than 1 objects (LoadOptions.MaxObjects) at this file, 2 in all; split the repository or raise the limit"},
		{"depth", map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n"}, LoadOptions{},
			"a.yaml:5: metadata.labels: expected a mapping, found a list"},
		{"depth limit", map[string]string{"a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n"}, LoadOptions{MaxDepth: 4},
			"a.yaml:9: spec.template.spec.containers[0]: nested more than 4 levels deep (LoadOptions.MaxDepth)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for n, d := range tt.files {
				fsys[n] = &fstest.MapFile{Data: []byte(d)}
			}
			_, err := LoadFS(context.Background(), fsys, ".", tt.opts)
			got := errorStrings(t, err)
			if len(got) == 0 || got[len(got)-1] != tt.want && got[0] != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}

func TestHiddenAndOtherFilesSkipped(t *testing.T) {
	set, err := loadMap(t, map[string]string{
		"a.yaml":           deployWeb,
		".hidden.yaml":     "not: [valid",
		".git/config.yaml": "not: [valid",
		"README.md":        "# hi",
		"kustomize/b.yml":  "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if set.Files != 2 || len(set.Objects) != 2 {
		t.Fatalf("files %d objects %d", set.Files, len(set.Objects))
	}
	if set.Objects[0].GetKind() != "Namespace" {
		t.Errorf("objects not sorted by kind: first is %s", set.Objects[0].GetKind())
	}
	if f, l := set.Source(set.Objects[1]); f != "a.yaml" || l != 1 {
		t.Errorf("source %s:%d", f, l)
	}
	if f, l := set.FieldSource(set.Objects[1], "spec.template.spec.containers[0].image"); f != "a.yaml" || l != 16 {
		t.Errorf("field source %s:%d", f, l)
	}
}

func TestLoadCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := LoadFS(ctx, fstest.MapFS{"a.yaml": {Data: []byte(deployWeb)}}, ".", LoadOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v", err)
	}
}
