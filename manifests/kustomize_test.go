package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The base most kustomize tests build on: a Deployment that mounts and reads
// generated ConfigMaps and Secrets, and a Service.
var kustBase = map[string]string{
	"base/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
- service.yaml
configMapGenerator:
- name: web-config
  literals:
  - GREETING=hello
  files:
  - index.html
secretGenerator:
- name: web-secret
  literals:
  - TOKEN=s3cret
`,
	"base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 1
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
            name: web-config
        env:
        - name: TOKEN
          valueFrom:
            secretKeyRef:
              name: web-secret
              key: TOKEN
        volumeMounts:
        - name: html
          mountPath: /usr/share/nginx/html
      volumes:
      - name: html
        configMap:
          name: web-config
`,
	"base/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
`,
	"base/index.html": "<h1>hello</h1>\n",
}

// withFiles returns base plus files (an empty value removes a file).
func withFiles(base map[string]string, files map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range files {
		if v == "" {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

// kustomizeReference builds dir with plain kustomize (no Shoal checks, no
// origin annotations) and returns its objects decoded and rendered, one
// string per object, sorted.
func kustomizeReference(t *testing.T, files map[string]string, dir string) []string {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	for name, data := range files {
		if err := mem.WriteFile("/"+name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	m, err := krusty.MakeKustomizer(opts).Run(mem, path.Join("/", dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []Object
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		got, errs := DecodeFile("ref.yaml", y, LoadOptions{})
		if errs != nil {
			t.Fatalf("kustomize's output does not decode: %v\n%s", errs, y)
		}
		objs = append(objs, got...)
	}
	return renderSorted(t, objs)
}

func renderSorted(t *testing.T, objs []Object) []string {
	t.Helper()
	var out []string
	for _, o := range objs {
		y, err := Marshal([]Object{o}, "yaml")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(y))
	}
	slices.Sort(out)
	return out
}

// field returns the value at a dotted path ("spec.template.spec.containers.0.image")
// of an object's JSON form.
func field(t *testing.T, o Object, p string) any {
	t.Helper()
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	for part := range strings.SplitSeq(p, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// byKind returns the objects of a kind, by name.
func byKind(s *Set, kind string) map[string]Object {
	out := map[string]Object{}
	for _, o := range s.Objects {
		if o.GetKind() == kind {
			out[o.GetObjectMeta().Name] = o
		}
	}
	return out
}

// hashedName returns the one name of kind that is prefix followed by a
// kustomize hash suffix.
func hashedName(t *testing.T, s *Set, kind, prefix string) string {
	t.Helper()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + "-[a-z0-9]{10}$")
	var found []string
	for name := range byKind(s, kind) {
		if re.MatchString(name) {
			found = append(found, name)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s named %s-<hash>, have %v", kind, prefix, found)
	}
	return found[0]
}

func TestKustomizeBuildsAsKustomizeDoes(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		check func(t *testing.T, s *Set)
	}{
		{
			name:  "resources and generators with hash suffixes and references rewritten",
			files: map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\n"},
			check: func(t *testing.T, s *Set) {
				cm := hashedName(t, s, "ConfigMap", "web-config")
				sec := hashedName(t, s, "Secret", "web-secret")
				d := byKind(s, "Deployment")["web"]
				if d == nil {
					t.Fatal("no Deployment web")
				}
				if got := field(t, d, "spec.template.spec.containers.0.envFrom.0.configMapRef.name"); got != cm {
					t.Errorf("envFrom refers to %v, want %s", got, cm)
				}
				if got := field(t, d, "spec.template.spec.volumes.0.configMap.name"); got != cm {
					t.Errorf("volume refers to %v, want %s", got, cm)
				}
				if got := field(t, d, "spec.template.spec.containers.0.env.0.valueFrom.secretKeyRef.name"); got != sec {
					t.Errorf("secretKeyRef refers to %v, want %s", got, sec)
				}
				if got := field(t, byKind(s, "ConfigMap")[cm], "data.index.html"); got != nil {
					t.Errorf("field path split a key: %v", got)
				}
				data := field(t, byKind(s, "ConfigMap")[cm], "data").(map[string]any)
				if data["GREETING"] != "hello" || data["index.html"] != "<h1>hello</h1>\n" {
					t.Errorf("generated data %v", data)
				}
			},
		},
		{
			name:  "bases (deprecated)",
			files: map[string]string{"prod/kustomization.yaml": "bases:\n- ../base\n"},
			check: func(t *testing.T, s *Set) {
				if byKind(s, "Deployment")["web"] == nil {
					t.Error("no Deployment web")
				}
			},
		},
		{
			name:  "namespace",
			files: map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\nnamespace: shop\n"},
			check: func(t *testing.T, s *Set) {
				for _, o := range s.Objects {
					if ns := o.GetObjectMeta().Namespace; ns != "shop" {
						t.Errorf("%s is in namespace %q, want shop", KeyOf(o), ns)
					}
				}
			},
		},
		{
			name:  "namePrefix and nameSuffix",
			files: map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\nnamePrefix: prod-\nnameSuffix: -v1\n"},
			check: func(t *testing.T, s *Set) {
				cm := hashedName(t, s, "ConfigMap", "prod-web-config-v1")
				d := byKind(s, "Deployment")["prod-web-v1"]
				if d == nil || byKind(s, "Service")["prod-web-v1"] == nil {
					t.Fatalf("Deployment and Service not renamed: %v", s.Objects)
				}
				if got := field(t, d, "spec.template.spec.volumes.0.configMap.name"); got != cm {
					t.Errorf("volume refers to %v, want %s", got, cm)
				}
			},
		},
		{
			name: "labels, commonLabels and commonAnnotations",
			files: map[string]string{"prod/kustomization.yaml": `resources:
- ../base
labels:
- pairs: {team: shop}
  includeSelectors: true
commonLabels:
  env: prod
commonAnnotations:
  owner: ops@example.com
`},
			check: func(t *testing.T, s *Set) {
				d := byKind(s, "Deployment")["web"]
				for _, p := range []string{"metadata.labels.team", "spec.selector.matchLabels.team", "spec.template.metadata.labels.team"} {
					if field(t, d, p) != "shop" {
						t.Errorf("%s: %v, want shop", p, field(t, d, p))
					}
				}
				if field(t, d, "spec.selector.matchLabels.env") != "prod" {
					t.Error("commonLabels not in the selector")
				}
				if field(t, byKind(s, "Service")["web"], "spec.selector.team") != "shop" {
					t.Error("the Service's selector lacks the label")
				}
				if field(t, d, "metadata.annotations.owner") != "ops@example.com" {
					t.Error("commonAnnotations not applied")
				}
			},
		},
		{
			name:  "images",
			files: map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\nimages:\n- name: nginx\n  newName: registry.example.com/nginx\n  newTag: \"1.28\"\n"},
			check: func(t *testing.T, s *Set) {
				if got := field(t, byKind(s, "Deployment")["web"], "spec.template.spec.containers.0.image"); got != "registry.example.com/nginx:1.28" {
					t.Errorf("image %v", got)
				}
			},
		},
		{
			name:  "replicas",
			files: map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\nreplicas:\n- name: web\n  count: 5\n"},
			check: func(t *testing.T, s *Set) {
				if got := field(t, byKind(s, "Deployment")["web"], "spec.replicas"); got != 5.0 {
					t.Errorf("replicas %v", got)
				}
			},
		},
		{
			name: "patches: strategic merge, inline",
			files: map[string]string{"prod/kustomization.yaml": `resources:
- ../base
patches:
- patch: |
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      template:
        spec:
          containers:
          - name: web
            env:
            - name: MODE
              value: prod
`},
			check: func(t *testing.T, s *Set) {
				env := field(t, byKind(s, "Deployment")["web"], "spec.template.spec.containers.0.env").([]any)
				if len(env) != 2 {
					t.Errorf("env %v: want TOKEN merged with MODE", env)
				}
			},
		},
		{
			name: "patches: JSON 6902 with a target",
			files: map[string]string{"prod/kustomization.yaml": `resources:
- ../base
patches:
- target: {kind: Deployment, name: web}
  patch: |
    - op: replace
      path: /spec/template/spec/containers/0/image
      value: nginx:1.29
`},
			check: func(t *testing.T, s *Set) {
				if got := field(t, byKind(s, "Deployment")["web"], "spec.template.spec.containers.0.image"); got != "nginx:1.29" {
					t.Errorf("image %v", got)
				}
			},
		},
		{
			name: "patchesStrategicMerge and patchesJson6902 files",
			files: map[string]string{
				"prod/kustomization.yaml": "resources:\n- ../base\npatchesStrategicMerge:\n- replicas.yaml\npatchesJson6902:\n- target: {group: apps, version: v1, kind: Deployment, name: web}\n  path: image.yaml\n",
				"prod/replicas.yaml":      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
				"prod/image.yaml":         "- op: replace\n  path: /spec/template/spec/containers/0/image\n  value: nginx:1.30\n",
			},
			check: func(t *testing.T, s *Set) {
				d := byKind(s, "Deployment")["web"]
				if field(t, d, "spec.replicas") != 3.0 || field(t, d, "spec.template.spec.containers.0.image") != "nginx:1.30" {
					t.Errorf("patches not applied: replicas %v image %v", field(t, d, "spec.replicas"), field(t, d, "spec.template.spec.containers.0.image"))
				}
			},
		},
		{
			name: "configMapGenerator merged in an overlay: new hash, references follow",
			files: map[string]string{"prod/kustomization.yaml": `resources:
- ../base
configMapGenerator:
- name: web-config
  behavior: merge
  literals:
  - GREETING=hi
`},
			check: func(t *testing.T, s *Set) {
				cm := hashedName(t, s, "ConfigMap", "web-config")
				if field(t, byKind(s, "ConfigMap")[cm], "data.GREETING") != "hi" {
					t.Error("literal not merged")
				}
				if got := field(t, byKind(s, "Deployment")["web"], "spec.template.spec.containers.0.envFrom.0.configMapRef.name"); got != cm {
					t.Errorf("envFrom refers to %v, want %s", got, cm)
				}
			},
		},
		{
			name: "replacements",
			files: map[string]string{"prod/kustomization.yaml": `resources:
- ../base
replacements:
- source: {kind: Service, name: web, fieldPath: metadata.name}
  targets:
  - select: {kind: Deployment, name: web}
    fieldPaths:
    - spec.template.spec.containers.[name=web].env.[name=TOKEN].valueFrom.secretKeyRef.key
`},
			check: func(t *testing.T, s *Set) {
				if got := field(t, byKind(s, "Deployment")["web"], "spec.template.spec.containers.0.env.0.valueFrom.secretKeyRef.key"); got != "web" {
					t.Errorf("replaced value %v", got)
				}
			},
		},
		{
			name: "components",
			files: map[string]string{
				"prod/kustomization.yaml": "resources:\n- ../base\ncomponents:\n- ../components/debug\n",
				"components/debug/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
configMapGenerator:
- name: debug
  literals: [LEVEL=debug]
patches:
- target: {kind: Deployment}
  patch: |
    - op: add
      path: /spec/template/spec/containers/0/args
      value: ["--debug"]
`,
			},
			check: func(t *testing.T, s *Set) {
				hashedName(t, s, "ConfigMap", "debug")
				if got := field(t, byKind(s, "Deployment")["web"], "spec.template.spec.containers.0.args.0"); got != "--debug" {
					t.Errorf("component's patch not applied: %v", got)
				}
			},
		},
		{
			name:  "generatorOptions",
			files: map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\ngeneratorOptions:\n  disableNameSuffixHash: true\n  labels: {generated: \"yes\"}\n"},
			check: func(t *testing.T, s *Set) {
				// Options of the overlay do not reach the base's generators.
				hashedName(t, s, "ConfigMap", "web-config")
			},
		},
		{
			name:  "kustomization.yml and Kustomization file names",
			files: map[string]string{"prod/Kustomization": "resources:\n- ../mid\n", "mid/kustomization.yml": "resources:\n- ../base\nnamePrefix: mid-\n"},
			check: func(t *testing.T, s *Set) {
				if byKind(s, "Deployment")["mid-web"] == nil {
					t.Errorf("objects %v", s.Objects)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := withFiles(kustBase, tt.files)
			set, err := LoadFS(context.Background(), mapFS(files), "prod", LoadOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			want := kustomizeReference(t, files, "prod")
			got := renderSorted(t, set.Objects)
			if !slices.Equal(got, want) {
				t.Errorf("Shoal's build differs from kustomize's:\n got %v\nwant %v", got, want)
			}
			for _, o := range set.Objects {
				for k := range o.GetObjectMeta().Annotations {
					if k == originAnnotation || k == transformerAnnotation {
						t.Errorf("%s keeps the annotation %s", KeyOf(o), k)
					}
				}
			}
			tt.check(t, set)
		})
	}
}

func TestKustomizeDirectoryRule(t *testing.T) {
	plain := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
	}
	tests := []struct {
		name   string
		files  map[string]string
		root   string
		want   []string // ConfigMap names
		nfiles int
	}{
		{
			name: "a kustomization at the root is built and nothing else is loaded",
			files: map[string]string{
				"kustomization.yaml": "resources:\n- a.yaml\n",
				"a.yaml":             plain("a"),
				"b.yaml":             plain("b"),
				"sub/c.yaml":         plain("c"),
			},
			root: ".", want: []string{"a"}, nfiles: 2,
		},
		{
			name: "without one, plain YAML is loaded and each subdirectory with a kustomization is built as a unit",
			files: map[string]string{
				"a.yaml":                             plain("a"),
				"apps/b.yaml":                        plain("b"),
				"apps/web/kustomization.yaml":        "resources:\n- c.yaml\nnamePrefix: web-\n",
				"apps/web/c.yaml":                    plain("c"),
				"apps/web/unlisted.yaml":             plain("unlisted"),
				"apps/web/nested/d.yaml":             plain("d"),
				"apps/web/nested/kustomization.yaml": "resources:\n- d.yaml\n",
				".hidden/kustomization.yaml":         "resources:\n- e.yaml\n",
				".hidden/e.yaml":                     plain("e"),
				"apps/.skip.yaml":                    plain("skip"),
			},
			root: ".", want: []string{"a", "b", "web-c"}, nfiles: 4,
		},
		{
			name: "the manifest directory is the root; its overlay may use ../base",
			files: map[string]string{
				"prod/kustomization.yaml": "resources:\n- ../base\nnamePrefix: prod-\n",
				"base/kustomization.yaml": "resources:\n- a.yaml\n",
				"base/a.yaml":             plain("a"),
				"other.yaml":              plain("other"),
			},
			root: "prod", want: []string{"prod-a"}, nfiles: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := LoadFS(context.Background(), mapFS(tt.files), tt.root, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range set.Objects {
				got = append(got, o.GetObjectMeta().Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("objects %v, want %v", got, tt.want)
			}
			if set.Files != tt.nfiles {
				t.Errorf("Files %d, want %d", set.Files, tt.nfiles)
			}
		})
	}
}

func TestKustomizeErrorsNameFileAndLine(t *testing.T) {
	overlay := func(k string, extra ...string) map[string]string {
		files := map[string]string{"prod/kustomization.yaml": k}
		for i := 0; i+1 < len(extra); i += 2 {
			files[extra[i]] = extra[i+1]
		}
		return withFiles(kustBase, files)
	}
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each error, as a regular expression
	}{
		{"unknown field", overlay("resources:\n- ../base\nimagez: []\n"),
			[]string{`^kustomization\.yaml:3: unknown field "imagez" \(did you mean "images"\?\)$`}},
		{"unknown nested field", overlay("resources:\n- ../base\nimages:\n- name: nginx\n  newTagg: x\n"),
			[]string{`^kustomization\.yaml:5: images\[0\]: unknown field "newTagg" \(did you mean "newTag"\?\)$`}},
		{"number for a string", overlay("resources:\n- ../base\nimages:\n- name: nginx\n  newTag: 1.28\n"),
			[]string{`^kustomization\.yaml:5: images\[0\]\.newTag: expected a string, found the number 1\.28; quote it`}},
		{"YAML error", overlay("resources:\n- ../base\n  foo: [\n"),
			[]string{`^kustomization\.yaml:3: invalid YAML: `}},
		{"missing resource", overlay("resources:\n- ../base\n- nope.yaml\n"),
			[]string{`^kustomization\.yaml:3: resources\[1\]: resource "nope\.yaml" does not exist \(looked for nope\.yaml\)`}},
		{"missing resource in a base", withFiles(kustBase, map[string]string{
			"prod/kustomization.yaml": "resources:\n- ../base\n",
			"base/kustomization.yaml": "resources:\n- deployment.yaml\n- gone.yaml\n",
		}), []string{`^\.\./base/kustomization\.yaml:3: resources\[1\]: resource "gone\.yaml" does not exist \(looked for \.\./base/gone\.yaml\)`}},
		{"missing patch and generator files", overlay("resources:\n- ../base\npatches:\n- path: p.yaml\nconfigMapGenerator:\n- name: x\n  files:\n  - key=data.txt\n  envs:\n  - x.env\n"),
			[]string{
				`^kustomization\.yaml:4: patches\[0\]\.path: file "p\.yaml" does not exist`,
				`^kustomization\.yaml:8: configMapGenerator\[0\]\.files\[0\]: file "data\.txt" does not exist`,
				`^kustomization\.yaml:10: configMapGenerator\[0\]\.envs\[0\]: file "x\.env" does not exist`,
			}},
		{"patch target not found", overlay("resources:\n- ../base\npatches:\n- path: p.yaml\n", "prod/p.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: other\nspec:\n  replicas: 2\n"),
			[]string{`^kustomization\.yaml:4: kustomize build: .*Deployment\.v1\.apps/other`}},
		{"JSON patch path missing", overlay("resources:\n- ../base\npatches:\n- target: {kind: Deployment, name: web}\n  patch: |\n    - op: replace\n      path: /spec/nothere/x\n      value: 3\n"),
			[]string{`^kustomization\.yaml:7: kustomize build: .*/spec/nothere/x`}},
		{"duplicate base", overlay("resources:\n- ../base\n- ../base\n"),
			[]string{`^kustomization\.yaml:2: kustomize build: .*already registered id`}},
		{"kind", overlay("kind: Kustomisation\nresources:\n- ../base\n"),
			[]string{`^kustomization\.yaml:1: kind: a kustomization file has kind Kustomization or Component, not "Kustomisation"`}},
		{"component built alone", map[string]string{"prod/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"},
			[]string{`^kustomization\.yaml:2: kind: a kustomize Component is not built by itself`}},
		{"several kustomization files", map[string]string{"prod/kustomization.yaml": "resources: []\n", "prod/Kustomization": "resources: []\n"},
			[]string{`^kustomization\.yaml: the directory has more than one kustomization file \(kustomization\.yaml, Kustomization\)`}},
		{"a built object fails validation: its source line", overlay("resources:\n- ../base\npatches:\n- target: {kind: Deployment}\n  patch: |\n    - op: replace\n      path: /spec/replicas\n      value: -3\n"),
			[]string{`^\.\./base/deployment\.yaml:8: spec\.replicas: .* \(built by kustomization\.yaml\)$`}},
		{"a built object with an unknown field: its source line", withFiles(kustBase, map[string]string{
			"prod/kustomization.yaml": "resources:\n- ../base\nnamePrefix: p-\n",
			"base/service.yaml":       "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n    targtPort: 80\n",
		}), []string{`^\.\./base/service\.yaml:10: spec\.ports\[0\]: unknown field "targtPort" \(did you mean "targetPort"\?\) \(built by kustomization\.yaml\)$`}},
		{"an unsupported kind in a multi-document file: its document", withFiles(kustBase, map[string]string{
			"prod/kustomization.yaml": "resources:\n- ../base\n- more.yaml\n",
			"prod/more.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: j\n",
		}), []string{`^more\.yaml:7: kind: kind "Ingress" \(networking.k8s.io/v1\) is not supported by Shoal`}},
		{"a generated object fails validation: its generator entry", overlay("resources:\n- ../base\nconfigMapGenerator:\n- name: Bad_Name\n  literals: [a=b]\n"),
			[]string{`^kustomization\.yaml:4: metadata\.name: `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFS(context.Background(), mapFS(tt.files), "prod", LoadOptions{})
			got := errorStrings(t, err)
			if len(got) == 0 {
				t.Fatal("loaded without errors")
			}
			for _, w := range tt.want {
				re := regexp.MustCompile(w)
				if !slices.ContainsFunc(got, re.MatchString) {
					t.Errorf("no error matches %s; errors:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestKustomizeSources(t *testing.T) {
	files := withFiles(kustBase, map[string]string{"prod/kustomization.yaml": `resources:
- ../base
namePrefix: prod-
configMapGenerator:
- name: extra
  literals:
  - LEVEL=info
`})
	set, err := LoadFS(context.Background(), mapFS(files), "prod", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := byKind(set, "Deployment")["prod-web"]
	if f, l := set.Source(d); f != "../base/deployment.yaml" || l != 1 {
		t.Errorf("Source of the Deployment: %s:%d", f, l)
	}
	if f, l := set.FieldSource(d, "spec.template.spec.containers[0].image"); f != "../base/deployment.yaml" || l != 19 {
		t.Errorf("FieldSource of the image: %s:%d, want ../base/deployment.yaml:19", f, l)
	}
	extra := byKind(set, "ConfigMap")[hashedName(t, set, "ConfigMap", "prod-extra")]
	if f, l := set.Source(extra); f != "kustomization.yaml" || l != 5 {
		t.Errorf("Source of the generated ConfigMap: %s:%d, want kustomization.yaml:5", f, l)
	}
	if f, l := set.FieldSource(extra, "data[LEVEL]"); f != "kustomization.yaml" || l != 7 {
		t.Errorf("FieldSource of the literal: %s:%d, want kustomization.yaml:7", f, l)
	}
	base := byKind(set, "ConfigMap")[hashedName(t, set, "ConfigMap", "prod-web-config")]
	if f, l := set.Source(base); f != "../base/kustomization.yaml" || l != 7 {
		t.Errorf("Source of the base's generated ConfigMap: %s:%d, want ../base/kustomization.yaml:7", f, l)
	}
}

func TestKustomizeKeepsAnnotationsTheUserAskedFor(t *testing.T) {
	files := withFiles(kustBase, map[string]string{
		"prod/kustomization.yaml": "resources:\n- ../base\nbuildMetadata: [originAnnotations]\ncommonAnnotations: {team: shop}\n",
	})
	set, err := LoadFS(context.Background(), mapFS(files), "prod", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := byKind(set, "Deployment")["web"]
	a := d.GetObjectMeta().Annotations
	if a["team"] != "shop" || !strings.Contains(a[originAnnotation], "path: ../base/deployment.yaml") {
		t.Errorf("annotations %v: want the user's and the origin asked for", a)
	}
	if got, want := renderSorted(t, set.Objects), kustomizeReference(t, files, "prod"); !slices.Equal(got, want) {
		t.Errorf("differs from kustomize:\n got %v\nwant %v", got, want)
	}
}

func TestKustomizeRefusesWhatIsNotInTheRepository(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"github base", map[string]string{"prod/kustomization.yaml": "resources:\n- github.com/org/repo//base?ref=v1\n"}, `kustomization.yaml:2: resources[0]: "github.com/org/repo//base?ref=v1" is remote: `},
		{"https URL", map[string]string{"prod/kustomization.yaml": "resources:\n- https://example.com/deploy.yaml\n"}, `resources[0]: "https://example.com/deploy.yaml" is remote`},
		{"git:: URL", map[string]string{"prod/kustomization.yaml": "resources:\n- git::https://example.com/repo.git//base\n"}, `is remote`},
		{"ssh URL", map[string]string{"prod/kustomization.yaml": "resources:\n- ssh://git@example.com/repo.git\n"}, `is remote`},
		{"scp-style address", map[string]string{"prod/kustomization.yaml": "resources:\n- git@github.com:org/repo.git\n"}, `is remote`},
		{"remote component", map[string]string{"prod/kustomization.yaml": "components:\n- https://example.com/c\n"}, `components[0]: "https://example.com/c" is remote`},
		{"remote generator file", map[string]string{"prod/kustomization.yaml": "configMapGenerator:\n- name: c\n  files: [x=https://example.com/x]\n"}, `configMapGenerator[0].files[0]: "https://example.com/x" is remote`},
		{"remote patch", map[string]string{"prod/kustomization.yaml": "patches:\n- path: https://example.com/p.yaml\n"}, `patches[0].path: "https://example.com/p.yaml" is remote`},
		{"remote in a builtin plugin's file", map[string]string{
			"prod/kustomization.yaml": "generators:\n- gen.yaml\n",
			"prod/gen.yaml":           "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: c}\nfiles: [https://example.com/x]\n",
		}, `kustomization.yaml:2: generators[0].files: "https://example.com/x" is remote`},
		{"absolute path", map[string]string{"prod/kustomization.yaml": "resources:\n- /etc/passwd\n"}, `resources[0]: "/etc/passwd" is an absolute path`},
		{"outside the repository", map[string]string{"prod/kustomization.yaml": "resources:\n- ../../etc\n"}, `resources[0]: "../../etc" is outside the repository`},
		{"into .git", map[string]string{"prod/kustomization.yaml": "configMapGenerator:\n- name: c\n  files: [../.git/config]\n", ".git/config": "x"}, `is inside .git`},
		{"helmCharts", map[string]string{"prod/kustomization.yaml": "helmCharts:\n- name: redis\n  repo: https://charts.example.com\n"}, `kustomization.yaml:1: helmCharts: Shoal does not inflate Helm charts in kustomize builds (that runs the helm program and fetches charts): render the chart with "helm template" and commit the output`},
		{"helmChartInflationGenerator", map[string]string{"prod/kustomization.yaml": "helmChartInflationGenerator:\n- chartName: redis\n"}, `helmChartInflationGenerator: Shoal does not inflate Helm charts`},
		{"builtin Helm generator", map[string]string{
			"prod/kustomization.yaml": "generators:\n- helm.yaml\n",
			"prod/helm.yaml":          "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: h}\nname: redis\n",
		}, `kustomization.yaml:2: generators[0]: Shoal does not inflate Helm charts`},
		{"exec plugin", map[string]string{
			"prod/kustomization.yaml": "transformers:\n- plugin.yaml\n",
			"prod/plugin.yaml":        "apiVersion: someteam.example.com/v1\nkind: SedTransformer\nmetadata: {name: s}\n",
		}, `kustomization.yaml:2: transformers[0]: plugin.yaml configures the plugin someteam.example.com/v1 SedTransformer, which is not one of kustomize's builtin plugins`},
		{"KRM function, inline", map[string]string{
			"prod/kustomization.yaml": "generators:\n- |\n  apiVersion: example.com/v1\n  kind: Gen\n  metadata:\n    name: g\n    annotations:\n      config.kubernetes.io/function: |\n        container: {image: example.com/gen}\n",
		}, `generators[0]: the inline configuration configures the plugin example.com/v1 Gen`},
		{"plugin reached through a directory", map[string]string{
			"prod/kustomization.yaml":         "transformers:\n- plugins\n",
			"prod/plugins/kustomization.yaml": "resources:\n- p.yaml\n",
			"prod/plugins/p.yaml":             "apiVersion: example.com/v1\nkind: T\nmetadata: {name: t}\n",
		}, `unable to load external plugin 'T': T is not one of kustomize's builtin plugins`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFS(context.Background(), mapFS(tt.files), "prod", LoadOptions{})
			got := errorStrings(t, err)
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("no error contains %q; errors:\n%s", tt.want, strings.Join(got, "\n"))
			}
		})
	}
}

func TestKustomizeBuiltinPluginsRun(t *testing.T) {
	files := withFiles(kustBase, map[string]string{
		"prod/kustomization.yaml": "resources:\n- ../base\ntransformers:\n- prefix.yaml\n- |\n  apiVersion: builtin\n  kind: LabelTransformer\n  metadata: {name: l}\n  labels: {tier: web}\n  fieldSpecs: [{path: metadata/labels, create: true}]\n",
		"prod/prefix.yaml":        "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata: {name: p}\nprefix: x-\nfieldSpecs: [{path: metadata/name}]\n",
	})
	set, err := LoadFS(context.Background(), mapFS(files), "prod", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := byKind(set, "Deployment")["x-web"]
	if d == nil || field(t, d, "metadata.labels.tier") != "web" {
		t.Fatalf("builtin transformers not run: %v", set.Objects)
	}
}

// TestKustomizeLimits checks that builds that would grow without bound fail
// fast, each with its limit named.
func TestKustomizeLimits(t *testing.T) {
	big := strings.Repeat("x", 600<<10)
	// levels of overlays, each including the one below twice under two
	// prefixes: 2^levels copies of the base.
	doubling := func(levels int) map[string]string {
		files := map[string]string{
			"l0/kustomization.yaml": "resources:\n- cm.yaml\n",
			"l0/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
		}
		for i := 1; i <= levels; i++ {
			for _, side := range []string{"a", "b"} {
				files[fmt.Sprintf("l%d%s/kustomization.yaml", i, side)] = fmt.Sprintf("resources:\n- ../l%d\nnamePrefix: %s-\n", i-1, side)
			}
			files[fmt.Sprintf("l%d/kustomization.yaml", i)] = fmt.Sprintf("resources:\n- ../l%da\n- ../l%db\n", i, i)
		}
		files["prod/kustomization.yaml"] = fmt.Sprintf("resources:\n- ../l%d\n", levels)
		return files
	}
	many := func(entry string, n int) string {
		return "configMapGenerator:\n" + strings.Repeat(entry, n)
	}
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  string
	}{
		{"files read", doubling(12), LoadOptions{}, "read more than 2000 files (LoadOptions.MaxBuildReads)"},
		{"bytes read", map[string]string{
			"prod/kustomization.yaml": many("- name: c\n  files: [a=big.txt, b=big.txt]\n", 1),
			"prod/big.txt":            big,
		}, LoadOptions{MaxTreeSize: 1 << 20}, "kustomize builds read more than 1048576 bytes (LoadOptions.MaxTreeSize)"},
		{"file size", map[string]string{
			"prod/kustomization.yaml": "configMapGenerator:\n- name: c\n  files: [big.txt]\n",
			"prod/big.txt":            big,
		}, LoadOptions{MaxFileSize: 100 << 10}, "more than the limit of 102400 bytes (LoadOptions.MaxFileSize)"},
		{"generators repeated", map[string]string{
			"prod/kustomization.yaml": many("- {name: c, literals: [a=b]}\n", 3000),
		}, LoadOptions{}, "kustomization.yaml:1: configMapGenerator: the kustomizations of this build declare more than 2000"},
		{"many patches", map[string]string{
			"prod/kustomization.yaml": "patches:\n" + strings.Repeat("- {target: {kind: Deployment}, patch: '[{\"op\": \"add\", \"path\": \"/metadata/labels/a\", \"value\": \"b\"}]'}\n", 50),
		}, LoadOptions{MaxBuildSteps: 20}, "more than 20 generators"},
		{"objects built", doubling(4), LoadOptions{MaxObjects: 10}, "builds 16 objects, more than 10 (LoadOptions.MaxObjects)"},
		{"aliases in a resource", map[string]string{
			"prod/kustomization.yaml": "resources: [bomb.yaml]\n",
			"prod/bomb.yaml":          billionLaughs("    command: *l9\n"),
		}, LoadOptions{}, "bomb.yaml:1: YAML aliases expand to more than 10000 nodes (LoadOptions.MaxAliasNodes)"},
		{"aliases in a patch", map[string]string{
			"prod/kustomization.yaml": "patches: [{path: bomb.yaml}]\n",
			"prod/bomb.yaml":          billionLaughs("    command: *l9\n"),
		}, LoadOptions{}, "bomb.yaml:1: YAML aliases expand to more than 10000 nodes"},
		{"aliases in the kustomization", map[string]string{
			"prod/kustomization.yaml": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
		}, LoadOptions{}, "kustomization.yaml:1: YAML aliases expand to more than 10000 nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFS(context.Background(), mapFS(tt.files), "prod", tt.opts)
			got := errorStrings(t, err)
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("no error contains %q; errors:\n%s", tt.want, strings.Join(got, "\n"))
			}
		})
	}
}

// stuckFS blocks every Open of a file named stuck.yaml until release is
// closed; it panics on any file named panic.yaml.
type stuckFS struct {
	fstest.MapFS
	release chan struct{}
	opened  chan struct{}
}

func (s *stuckFS) Open(name string) (fs.File, error) {
	switch path.Base(name) {
	case "stuck.yaml":
		select {
		case s.opened <- struct{}{}:
		default:
		}
		<-s.release
	case "panic.yaml":
		panic("a bug")
	}
	return s.MapFS.Open(name)
}

func TestKustomizeTimeoutAndPanic(t *testing.T) {
	files := map[string]string{
		"prod/kustomization.yaml": "resources:\n- stuck.yaml\n",
		"prod/stuck.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
		"ok/kustomization.yaml":   "resources:\n- cm.yaml\n",
		"ok/cm.yaml":              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
		"bad/kustomization.yaml":  "resources:\n- panic.yaml\n",
		"bad/panic.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
	}
	sfs := &stuckFS{MapFS: mapFS(files), release: make(chan struct{}), opened: make(chan struct{}, 1)}
	released := false
	release := func() {
		if !released {
			close(sfs.release)
			released = true
		}
	}
	t.Cleanup(release)
	opts := LoadOptions{MaxBuildTime: 300 * time.Millisecond}

	_, err := LoadFS(context.Background(), sfs, "prod", opts)
	got := errorStrings(t, err)
	if len(got) != 1 || !strings.Contains(got[0], "kustomization.yaml: kustomize build timed out: it ran longer than 300ms (LoadOptions.MaxBuildTime)") {
		t.Fatalf("errors %q, want the timeout", got)
	}
	// The stuck build holds the slot: another build waits no longer than its
	// own limit rather than piling up.
	_, err = LoadFS(context.Background(), sfs, "ok", opts)
	if got := errorStrings(t, err); len(got) != 1 || !strings.Contains(got[0], "waited 300ms for an earlier kustomize build to finish") {
		t.Fatalf("errors %q, want the wait for the slot", got)
	}
	// Once kustomize returns, the slot is free again and builds work.
	release()
	if _, err := LoadFS(context.Background(), sfs, "ok", LoadOptions{}); err != nil {
		t.Fatalf("build after the stuck one: %v", err)
	}
	_, err = LoadFS(context.Background(), sfs, "bad", LoadOptions{})
	if got := errorStrings(t, err); len(got) != 1 || !strings.Contains(got[0], "kustomize failed unexpectedly") {
		t.Fatalf("errors %q, want the panic as an error", got)
	}
	if _, err := LoadFS(context.Background(), sfs, "ok", LoadOptions{}); err != nil {
		t.Fatalf("build after the panic: %v", err)
	}
}

func TestKustomizeFSIsReadOnlyAndRooted(t *testing.T) {
	b := &build{fsys: mapFS(map[string]string{"a/b.yaml": "x: 1\n", ".git/config": "x"}), lim: LoadOptions{}.limits(),
		name: func(s string) string { return s }, files: map[string]bool{}, kusts: map[string]*kustDoc{}}
	k := &kustFS{fsys: b.fsys, b: b}
	for name, err := range map[string]error{
		"Create":    func() error { _, err := k.Create("/repo/x"); return err }(),
		"Mkdir":     k.Mkdir("/repo/x"),
		"MkdirAll":  k.MkdirAll("/repo/x"),
		"RemoveAll": k.RemoveAll("/repo/a"),
		"WriteFile": k.WriteFile("/repo/a/b.yaml", nil),
	} {
		if !errors.Is(err, errReadOnly) {
			t.Errorf("%s: %v, want the read-only error", name, err)
		}
	}
	if data, err := k.ReadFile("/repo/a/b.yaml"); err != nil || string(data) != "x: 1\n" {
		t.Errorf("ReadFile: %q %v", data, err)
	}
	for _, p := range []string{"/etc/passwd", "/repo/../etc/passwd", "/repo/.git/config", "/repo2/a/b.yaml"} {
		if _, err := k.ReadFile(p); err == nil {
			t.Errorf("ReadFile(%s) succeeded", p)
		}
	}
	if !k.IsDir("/repo/a") || k.IsDir("/repo/a/b.yaml") || !k.Exists("/repo/a/b.yaml") || k.Exists("/repo/nope") {
		t.Error("IsDir/Exists wrong")
	}
	if d, f, err := k.CleanedAbs("/repo/a/b.yaml"); err != nil || d != "/repo/a" || f != "b.yaml" {
		t.Errorf("CleanedAbs: %q %q %v", d, f, err)
	}
	if names, err := k.ReadDir("/repo"); err != nil || !slices.Equal(names, []string{"a"}) {
		t.Errorf("ReadDir hides .git: %v %v", names, err)
	}
	if m, err := k.Glob("/repo/a/*.yaml"); err != nil || !slices.Equal(m, []string{"/repo/a/b.yaml"}) {
		t.Errorf("Glob: %v %v", m, err)
	}
	k.stopped.Store(true)
	if _, err := k.ReadFile("/repo/a/b.yaml"); !errors.Is(err, errBuildStopped) {
		t.Errorf("after the deadline: %v", err)
	}
}

func TestDisplayName(t *testing.T) {
	for _, tt := range []struct{ root, prefix, rel, want string }{
		{".", "", "a/b.yaml", "a/b.yaml"},
		{"prod", "", "prod/k.yaml", "k.yaml"},
		{"prod", "", "base/d.yaml", "../base/d.yaml"},
		{"deploy/prod", "prod/", "deploy/base/d.yaml", "base/d.yaml"},
		{"prod", "/abs/repo/prod/", "base/d.yaml", "/abs/repo/base/d.yaml"},
		{"prod", "./prod/", "prod/d.yaml", "./prod/d.yaml"},
	} {
		if got := displayName(tt.root, tt.prefix, tt.rel); got != tt.want {
			t.Errorf("displayName(%q, %q, %q) = %q, want %q", tt.root, tt.prefix, tt.rel, got, tt.want)
		}
	}
}

// writeTree writes files under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKustomizeOnDisk(t *testing.T) {
	t.Run("in a git work tree, an overlay may use ../base", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, withFiles(kustBase, map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\n"}))
		if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
			t.Fatal(err)
		}
		set, err := LoadPaths(context.Background(), []string{filepath.Join(dir, "prod")}, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if f, l := set.Source(byKind(set, "Deployment")["web"]); f != filepath.Join(dir, "base", "deployment.yaml") || l != 1 {
			t.Errorf("Source %s:%d", f, l)
		}
		t.Chdir(filepath.Join(dir, "prod"))
		set, err = LoadPaths(context.Background(), []string{"."}, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := set.Source(byKind(set, "Deployment")["web"]); f != "../base/deployment.yaml" {
			t.Errorf("Source %s, want it relative to the current directory", f)
		}
		// A kustomization file given stands for its directory.
		if _, err := LoadPaths(context.Background(), []string{"kustomization.yaml"}, LoadOptions{}); err != nil {
			t.Errorf("kustomization file as a path: %v", err)
		}
	})
	t.Run("outside git, the directory given is the repository", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, withFiles(kustBase, map[string]string{"prod/kustomization.yaml": "resources:\n- ../base\n"}))
		_, err := LoadDir(context.Background(), filepath.Join(dir, "prod"), LoadOptions{})
		want := `kustomization.yaml:2: resources[0]: "../base" is outside the repository`
		if got := errorStrings(t, err); !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("errors %q, want one starting %q", got, want)
		}
		if _, err := LoadDir(context.Background(), dir, LoadOptions{}); err == nil {
			// From the top, prod and base are both built: their objects clash.
			t.Error("the top loads: base and prod are both units and define the same objects")
		} else if got := errorStrings(t, err); !slices.ContainsFunc(got, func(s string) bool {
			return strings.Contains(s, "base/kustomization.yaml: this directory is built on its own") && strings.Contains(s, "also included by prod/kustomization.yaml")
		}) {
			t.Errorf("errors %q: want the base named as built twice", got)
		}
	})
	t.Run("symbolic links are refused", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, withFiles(kustBase, map[string]string{
			"prod/kustomization.yaml":  "resources:\n- ../linked\n",
			"other/kustomization.yaml": "resources:\n- ../base/link.yaml\n",
		}))
		if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("base", filepath.Join(dir, "linked")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("service.yaml", filepath.Join(dir, "base", "link.yaml")); err != nil {
			t.Fatal(err)
		}
		for sub, want := range map[string]string{
			"prod":  `resources[0]: "../linked" is a symbolic link`,
			"other": `resources[0]: "../base/link.yaml" is a symbolic link`,
		} {
			_, err := LoadDir(context.Background(), filepath.Join(dir, sub), LoadOptions{})
			if got := errorStrings(t, err); !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) }) {
				t.Errorf("%s: errors %q, want %q", sub, got, want)
			}
		}
		// A link inside the path is refused by the file system too.
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		if _, err := (noFollowFS{root}).Open("linked/service.yaml"); !errors.Is(err, errSymlink) {
			t.Errorf("open through a linked directory: %v", err)
		}
	})
}

// FuzzKustomize builds a kustomization and one resource of arbitrary bytes
// next to a base: the loader never panics and returns a Set or an
// ErrorList whose errors name a file.
func FuzzKustomize(f *testing.F) {
	f.Add([]byte("resources:\n- ../base\n- res.yaml\n"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"))
	f.Add([]byte("resources: [../base]\nnamePrefix: p-\nimages: [{name: nginx, newTag: \"2\"}]\n"), []byte(""))
	f.Add([]byte("patches:\n- path: res.yaml\nresources: [../base]\n"), []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n"))
	f.Add([]byte("configMapGenerator:\n- name: c\n  files: [res.yaml]\n  literals: [a=b]\n"), []byte("x"))
	f.Add([]byte("resources: [res.yaml]\nreplacements:\n- source: {kind: ConfigMap, name: c, fieldPath: data.a}\n  targets: [{select: {kind: ConfigMap}, fieldPaths: [data.b]}]\n"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: x, b: y}\n"))
	f.Add([]byte("patchesJson6902:\n- target: {kind: Deployment, name: web}\n  path: res.yaml\nbases: [../base]\n"), []byte("- {op: remove, path: /spec}\n"))
	f.Add([]byte("resources: [github.com/a/b]\n"), []byte(""))
	f.Add([]byte("a: &a [*a]\n"), []byte("{"))
	f.Add([]byte("resources: [res.yaml]\n"), []byte("a: &a [x,x,x]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n"))
	f.Add([]byte("transformers: [res.yaml]\n"), []byte("apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata: {name: p}\nprefix: x-\n"))
	f.Fuzz(func(t *testing.T, kust, res []byte) {
		fsys := mapFS(map[string]string{
			"base/kustomization.yaml": "resources: [d.yaml]\n",
			"base/d.yaml":             deployWeb,
			"k/kustomization.yaml":    string(kust),
			"k/res.yaml":              string(res),
		})
		set, err := LoadFS(context.Background(), fsys, "k", LoadOptions{MaxBuildTime: 20 * time.Second, MaxObjects: 200, MaxBuildReads: 200})
		if err == nil {
			if set == nil {
				t.Fatal("neither a set nor an error")
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("error %T is not an ErrorList: %v", err, err)
		}
		for _, e := range list {
			if e.File == "" || e.Msg == "" {
				t.Fatalf("error without file or message: %#v", e)
			}
		}
	})
}

func TestKustomizeCancelledIsNotAnErrorList(t *testing.T) {
	files := map[string]string{
		"prod/kustomization.yaml": "resources:\n- stuck.yaml\n",
		"prod/stuck.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
	}
	sfs := &stuckFS{MapFS: mapFS(files), release: make(chan struct{}), opened: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sfs.opened
		cancel()
	}()
	_, err := LoadFS(ctx, sfs, "prod", LoadOptions{})
	close(sfs.release)
	var list ErrorList
	if !errors.Is(err, context.Canceled) || errors.As(err, &list) {
		t.Fatalf("error %v (%T), want the cancellation, not a verdict on the tree", err, err)
	}
	// The build's goroutine returns and frees the slot.
	if _, err := LoadFS(context.Background(), mapFS(map[string]string{"ok/kustomization.yaml": "resources: [c.yaml]\n", "ok/c.yaml": files["prod/stuck.yaml"]}), "ok", LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}
