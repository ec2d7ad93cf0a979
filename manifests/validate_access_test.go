package manifests

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const shopDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: webapp
      containers: [{name: c, image: x}]
`

func TestServiceAccountReferences(t *testing.T) {
	account := func(ns string) string {
		return "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: webapp, namespace: " + ns + "}\n"
	}
	missing := `web.yaml:9: spec.template.spec.serviceAccountName: ServiceAccount "webapp" is not in namespace "shop" of this commit; add it (kind: ServiceAccount) or use "default"`
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"missing", map[string]string{"web.yaml": shopDeployment}, []string{missing}},
		{"in another namespace", map[string]string{"web.yaml": shopDeployment, "sa.yaml": account("default")}, []string{missing}},
		{"present", map[string]string{"web.yaml": shopDeployment, "sa.yaml": account("shop")}, nil},
		{"default needs no object", map[string]string{"web.yaml": strings.Replace(shopDeployment, "serviceAccountName: webapp", "serviceAccountName: default", 1)}, nil},
		{"unset is default", map[string]string{"web.yaml": strings.Replace(shopDeployment, "      serviceAccountName: webapp\n", "", 1)}, nil},
		{"deprecated field of a pod", map[string]string{"pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccount: builder\n  containers: [{name: c, image: x}]\n"},
			[]string{`pod.yaml:5: spec.serviceAccount: ServiceAccount "builder" is not in namespace "default" of this commit; add it (kind: ServiceAccount) or use "default"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadMap(t, tt.files)
			got := errorStrings(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	// One file alone cannot hold every account: DecodeFile (which the master
	// uses to read back stored objects one by one) leaves references alone.
	if _, errs := DecodeFile("web.yaml", []byte(shopDeployment), LoadOptions{}); errs != nil {
		t.Errorf("DecodeFile checked the account: %v", errs)
	}
	objs, _ := DecodeFile("web.yaml", []byte(shopDeployment), LoadOptions{})
	if errs := Validate(objs); len(errs) != 1 || !strings.Contains(errs[0].Msg, `ServiceAccount "webapp" is not in namespace "shop"`) {
		t.Errorf("Validate: %v", errs)
	}
}

func TestAccessKinds(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"service account", `apiVersion: v1
kind: ServiceAccount
metadata: {name: Web, namespace: shop}
imagePullSecrets: [{name: registry}, {name: ""}]
automountServiceAccountToken: false
`, []string{
			`a.yaml:3: metadata.name: "Web" is not a DNS-1123 subdomain: use lowercase letters, digits, '-' and '.' (such as "example.com")`,
			`a.yaml:4: imagePullSecrets[1].name: required`,
		}},
		{"service account secrets", `apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
secrets: [{name: web-token-x2v9}]
`, []string{`a.yaml:4: secrets: supported by Kubernetes, not by Shoal yet: it lists the account's API token Secrets, and Shoal has no Kubernetes API and mounts no ServiceAccount token; remove it (Kubernetes 1.24 and later do not fill it either)`}},
		{"valid rbac", `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:aggregate-to-view", namespace: ignored}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
- {nonResourceURLs: [/healthz], verbs: [get]}
aggregationRule: {clusterRoleSelectors: [{matchLabels: {rbac.example.com/aggregate: "true"}}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:aggregate-to-view"}
subjects:
- {kind: ServiceAccount, name: web, namespace: shop}
- {kind: User, name: "alice@example.com"}
- {kind: Group, name: "system:authenticated", apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules: [{apiGroups: [apps], resources: [deployments], resourceNames: [web], verbs: ["*"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: web}]
`, nil},
		{"role rules", `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "a/b"}
rules:
- {apiGroups: [""], resources: [pods]}
- {nonResourceURLs: [/metrics], verbs: [get]}
- {verbs: [get]}
`, []string{
			`a.yaml:3: metadata.name: "a/b" may not contain '/' or '%'`,
			`a.yaml:5: rules[0].verbs: required; list at least one verb, such as get`,
			`a.yaml:6: rules[1].nonResourceURLs: a Role's rules cannot apply to non-resource URLs; use a ClusterRole`,
			`a.yaml:7: rules[2].apiGroups: required; list at least one API group ("" is the core group)`,
			`a.yaml:7: rules[2].resources: required; list at least one resource, such as pods`,
		}},
		{"bindings", `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: b}
roleRef: {apiGroup: rbac.example.com, kind: Policy, name: ""}
subjects:
- {kind: Robot, name: r2}
- {kind: ServiceAccount, name: Web, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: bob, apiGroup: example.com}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: c}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: web}]
`, []string{
			`a.yaml:4: roleRef.apiGroup: must be rbac.authorization.k8s.io, is "rbac.example.com"`,
			`a.yaml:4: roleRef.kind: "Policy" is not one of Role, ClusterRole`,
			`a.yaml:4: roleRef.name: required; name the role to grant`,
			`a.yaml:6: subjects[0].kind: "Robot" is not one of ServiceAccount, User, Group`,
			`a.yaml:7: subjects[1].apiGroup: must be empty for a ServiceAccount, is "rbac.authorization.k8s.io"`,
			`a.yaml:7: subjects[1].name: "Web" is not a DNS-1123 subdomain: use lowercase letters, digits, '-' and '.' (such as "example.com")`,
			`a.yaml:8: subjects[2].apiGroup: must be rbac.authorization.k8s.io for a User, is "example.com"`,
			`a.yaml:13: roleRef.kind: "Role" is not supported; a ClusterRoleBinding grants a ClusterRole`,
			`a.yaml:14: subjects[0].namespace: required; name the ServiceAccount's namespace`,
		}},
		{"network policy", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec: {podSelector: {}}
`, []string{`a.yaml:2: kind: kind "NetworkPolicy" (networking.k8s.io/v1) is supported by Kubernetes, not by Shoal yet: a NetworkPolicy changes which traffic reaches your pods, and Shoal does not enforce network policies yet, so accepting it would leave the pods open; remove it from the tree Shoal reads`}},
		{"rbac apiVersion", `apiVersion: rbac.authorization.k8s.io/v1beta1
kind: Role
metadata: {name: r}
`, []string{`a.yaml:1: apiVersion: Role is "rbac.authorization.k8s.io/v1", not "rbac.authorization.k8s.io/v1beta1"; write "apiVersion: rbac.authorization.k8s.io/v1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, tt.doc, tt.want)
		})
	}
}

func TestWarnings(t *testing.T) {
	files := map[string]string{
		"rbac.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: Group, name: devs}]
`,
		"sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: webapp, namespace: shop}\nautomountServiceAccountToken: true\n",
		"web.yaml": strings.Replace(shopDeployment, "      serviceAccountName: webapp\n",
			"      serviceAccountName: webapp\n      automountServiceAccountToken: true\n", 1),
	}
	set, err := loadMap(t, files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`rbac.yaml:1: warning: Role "reader" has no effect in Shoal: Role only configures access to the Kubernetes API, which Shoal does not have`,
		`rbac.yaml:6: warning: ClusterRoleBinding "view" has no effect in Shoal: ClusterRoleBinding only configures access to the Kubernetes API, which Shoal does not have`,
		`sa.yaml:4: warning: automountServiceAccountToken: Shoal mounts no ServiceAccount token: it has no Kubernetes API for a token to be used with`,
		`web.yaml:10: warning: spec.template.spec.automountServiceAccountToken: Shoal mounts no ServiceAccount token: it has no Kubernetes API for a token to be used with`,
	}
	if got := set.Warnings.Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(set.Objects) != 4 {
		t.Errorf("%d objects", len(set.Objects))
	}
	// The defaults of the RBAC objects: group of Group subjects.
	crb := set.Get(ObjectKey{Kind: "ClusterRoleBinding", Name: "view"}).(*ClusterRoleBinding)
	if crb.Subjects[0].APIGroup != RBACGroup {
		t.Errorf("subject group %q", crb.Subjects[0].APIGroup)
	}
	// A tree without such objects has no warnings.
	set, err = loadMap(t, map[string]string{"a.yaml": deployWeb})
	if err != nil || len(set.Warnings) != 0 {
		t.Errorf("warnings %v, %v", set.Warnings, err)
	}
}

func TestYAMLErrorLines(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"first line", "x: - a\n", `a.yaml:1: invalid YAML: block sequence entries are not allowed in this context`},
		{"first line, no newline", "x: - a", `a.yaml:1: invalid YAML: block sequence entries are not allowed in this context`},
		{"first line, mapping", "a: b: c\n", `a.yaml:1: invalid YAML: mapping values are not allowed in this context`},
		{"tab on the first line", "\tx: 1\n", `a.yaml:1: invalid YAML: found character that cannot start any token (indent YAML with spaces, not tabs)`},
		{"second line", "a: 1\nx: - a\n", `a.yaml:2: invalid YAML: block sequence entries are not allowed in this context`},
		{"second document", "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\nx: - a\n", `a.yaml:5: invalid YAML: block sequence entries are not allowed in this context`},
		{"control character", "a: 1\nb: c\x01\n", `a.yaml:2: invalid YAML: control characters are not allowed`},
		{"bad UTF-8", "a: 1\nb: 2\nc: \xff\n", `a.yaml:3: invalid YAML: invalid leading UTF-8 octet`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := DecodeFile("a.yaml", []byte(tt.data), LoadOptions{})
			if len(errs) != 1 || errs[0].Error() != tt.want {
				t.Errorf("errors %v, want %s", errs, tt.want)
			}
		})
	}
}

func TestHelmTemplates(t *testing.T) {
	deployment := func(line string) string {
		return strings.Replace(deployWeb, "  selector:\n", line+"  selector:\n", 1)
	}
	tests := []struct {
		name, file, data string
		want             string // "" when the file loads
	}{
		{"values in a field", "templates/deploy.yaml", deployment("  replicas: {{ .Values.replicas }}\n"),
			"templates/deploy.yaml:6: " + helmTemplateMsg},
		{"quoted, valid YAML", "web.yaml", strings.Replace(deployWeb, "nginx:1.27", `"{{ .Values.image.repository }}:{{ .Values.image.tag }}"`, 1),
			"web.yaml:16: " + helmTemplateMsg},
		{"control at the start of a line", "web.yaml", "{{- if .Capabilities.APIVersions.Has \"x\" }}\n" + deployWeb + "{{- end }}\n",
			"web.yaml:1: " + helmTemplateMsg},
		{"include", "web.yaml", strings.Replace(deployWeb, "      labels:\n        app: web\n", "      labels:\n        {{- include \"web.labels\" . | nindent 8 }}\n", 1),
			"web.yaml:12: " + helmTemplateMsg},
		{"chart", "chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n",
			"chart/Chart.yaml:1: is a Helm chart's Chart.yaml, and Shoal does not render charts: render the chart with `helm template` and commit the output, keeping the chart itself out of the tree Shoal reads"},
		{"values", "chart/values.yaml", "replicas: 3\nimage: {repository: web}\n",
			"chart/values.yaml:1: looks like the values of a Helm chart, and Shoal does not render charts: render the chart with `helm template` and commit the output, keeping the chart itself out of the tree Shoal reads"},
		{"prometheus rules in a ConfigMap", "rules.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: rules}
data:
  rules.yaml: |
    groups:
    - name: up
      rules:
      - alert: Down
        annotations: {summary: "{{ $labels.instance }} is down"}
`, ""},
		{"alertmanager template with actions on their own lines", "am.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: am}
data:
  slack.tmpl: |
    {{ define "slack.title" }}
    {{ range .Alerts }}{{ .Labels.alertname }}{{ end }}
    {{ end }}
`, ""},
		{"a generic action and a real error keep the real error", "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetdata: {name: c}\ndata: {a: \"{{ .Name }}\"}\n",
			`cm.yaml:3: unknown field "metdata" (did you mean "metadata"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := DecodeFile(tt.file, []byte(tt.data), LoadOptions{})
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			want := []string(nil)
			if tt.want != "" {
				want = []string{tt.want}
			}
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}

func TestDivisorsParse(t *testing.T) {
	for _, q := range append(slices.Clone(cpuDivisors), sizeDivisors...) {
		if q.IsZero() {
			t.Errorf("a divisor did not parse: %v", q)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	doc := podDoc(`serviceAccount: builder
tolerations: [{key: a, value: b}]
topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule}]
volumes:
- name: info
  downwardAPI:
    items:
    - {path: name, fieldRef: {fieldPath: metadata.name}}
    - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: "0"}}
containers:
- name: c
  image: x
  lifecycle: {preStop: {httpGet: {port: 80}}}
  livenessProbe: {grpc: {port: 9090}}
  env:
  - {name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
  - {name: B, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
`)
	objs, errs := DecodeFile("a.yaml", []byte(doc), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	s := objs[0].(*Pod).Spec
	if s.ServiceAccountName != "builder" || s.DeprecatedServiceAccount != "builder" || s.DNSPolicy != DNSClusterFirst {
		t.Errorf("account %q/%q dns %q", s.ServiceAccountName, s.DeprecatedServiceAccount, s.DNSPolicy)
	}
	if s.Tolerations[0].Operator != TolerationOpEqual {
		t.Errorf("toleration operator %q", s.Tolerations[0].Operator)
	}
	tsc := s.TopologySpreadConstraints[0]
	if *tsc.NodeAffinityPolicy != NodeInclusionPolicyHonor || *tsc.NodeTaintsPolicy != NodeInclusionPolicyIgnore {
		t.Errorf("spread policies %v %v", *tsc.NodeAffinityPolicy, *tsc.NodeTaintsPolicy)
	}
	d := s.Volumes[0].DownwardAPI
	if *d.DefaultMode != 0o644 || d.Items[0].FieldRef.APIVersion != "v1" || d.Items[1].ResourceFieldRef.Divisor.String() != "1" {
		t.Errorf("downward API volume %+v", d)
	}
	c := s.Containers[0]
	if c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != TerminationMessageReadFile {
		t.Errorf("termination message %q %q", c.TerminationMessagePath, c.TerminationMessagePolicy)
	}
	if h := c.Lifecycle.PreStop.HTTPGet; h.Path != "/" || h.Scheme != URISchemeHTTP {
		t.Errorf("hook httpGet %+v", h)
	}
	if c.LivenessProbe.GRPC.Service != nil {
		t.Errorf("grpc service defaulted")
	}
	if c.Env[0].ValueFrom.FieldRef.APIVersion != "v1" || c.Env[1].ValueFrom.ResourceFieldRef.Divisor.String() != "1" || c.Env[1].ValueFrom.ResourceFieldRef.ContainerName != "" {
		t.Errorf("env defaults %+v %+v", c.Env[0].ValueFrom.FieldRef, c.Env[1].ValueFrom.ResourceFieldRef)
	}
	objs, _ = DecodeFile("b.yaml", []byte(podDoc("containers: [{name: c, image: x}]\n")), LoadOptions{})
	if s := objs[0].(*Pod).Spec; s.ServiceAccountName != "default" || s.DeprecatedServiceAccount != "default" {
		t.Errorf("account %q/%q", s.ServiceAccountName, s.DeprecatedServiceAccount)
	}
	// Rendered and read back, the defaults are the same.
	out, err := Marshal(objs, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := DecodeFile("c.yaml", out, LoadOptions{}); errs != nil {
		t.Errorf("rendered pod does not load: %v\n%s", errs, out)
	}
}

func TestErrorWarningFormat(t *testing.T) {
	e := &Error{File: "a.yaml", Line: 3, Field: "spec", Msg: "m"}
	if got := e.Warning(); got != "a.yaml:3: warning: spec: m" {
		t.Error(got)
	}
	if got := e.Error(); got != "a.yaml:3: spec: m" {
		t.Error(got)
	}
	var list ErrorList
	if !errors.As(ErrorList{e}.Err(), &list) || list.Warnings()[0] != "a.yaml:3: warning: spec: m" {
		t.Errorf("list %v", list)
	}
}
