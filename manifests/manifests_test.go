package manifests

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRealWorldShapesValid(t *testing.T) {
	set, err := LoadDir(context.Background(), "testdata/valid", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if set.Files != 5 || len(set.Objects) != 9 {
		t.Fatalf("files %d objects %d", set.Files, len(set.Objects))
	}
	var keys []string
	for _, o := range set.Objects {
		keys = append(keys, KeyOf(o).String())
	}
	want := "Service default/frontend,Service default/podinfo,Service default/redis-follower,Service default/redis-leader," +
		"Deployment default/frontend,Deployment default/nginx-deployment,Deployment default/podinfo,Deployment default/redis-follower,Deployment default/redis-leader"
	if got := strings.Join(keys, ","); got != want {
		t.Errorf("objects %s\nwant %s", got, want)
	}
	pod := set.Get(ObjectKey{Kind: "Deployment", Namespace: "default", Name: "podinfo"}).(*Deployment)
	c := pod.Spec.Template.Spec.Containers[0]
	if got := c.Resources.Limits[ResourceCPU].MilliValue(); got != 2000 {
		t.Errorf("cpu limit %d", got)
	}
	if got := c.Resources.Requests[ResourceMemory].Value(); got != 64<<20 {
		t.Errorf("memory request %d", got)
	}
	if ru := pod.Spec.Strategy.RollingUpdate; ru.MaxUnavailable.IntVal != 0 || ru.MaxSurge.StrVal != "25%" {
		t.Errorf("rolling update %+v %+v", *ru.MaxUnavailable, *ru.MaxSurge)
	}
	if *pod.Spec.RevisionHistoryLimit != 5 || *pod.Spec.ProgressDeadlineSeconds != 60 || pod.Spec.MinReadySeconds != 3 {
		t.Errorf("deployment spec %+v", pod.Spec)
	}
	if p := c.LivenessProbe; p.PeriodSeconds != 10 || p.TimeoutSeconds != 5 || p.FailureThreshold != 3 || p.SuccessThreshold != 1 {
		t.Errorf("probe defaults %+v", p)
	}
	if f, l := set.FieldSource(pod, "spec.template.spec.containers[0].ports[1].name"); f != "podinfo/deployment.yaml" || l != 32 {
		t.Errorf("field source %s:%d", f, l)
	}
}

func TestDefaults(t *testing.T) {
	doc := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes:
      - {name: c, configMap: {name: cfg}}
      - {name: s, secret: {secretName: sec}}
      - {name: h, hostPath: {path: /srv}}
      containers:
      - name: a
        image: nginx
        ports: [{containerPort: 80}]
        readinessProbe: {httpGet: {port: 80}}
      - {name: b, image: "nginx:latest"}
      - {name: c, image: "nginx:1.27"}
      - {name: d, image: "nginx@sha256:0123456789012345678901234567890123456789012345678901234567890123"}
      - {name: e, image: "registry.local:5000/app"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80}]
---
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {a: YQ==}
stringData: {b: plain}
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
`
	objs, errs := DecodeFile("a.yaml", []byte(doc), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	d := objs[0].(*Deployment)
	if d.Namespace != "default" || *d.Spec.Replicas != 1 || *d.Spec.RevisionHistoryLimit != 10 || *d.Spec.ProgressDeadlineSeconds != 600 {
		t.Errorf("deployment defaults %+v", d.Spec)
	}
	if s := d.Spec.Strategy; s.Type != RollingUpdateDeploymentStrategyType || s.RollingUpdate.MaxSurge.String() != "25%" || s.RollingUpdate.MaxUnavailable.String() != "25%" {
		t.Errorf("strategy %+v", s)
	}
	ps := d.Spec.Template.Spec
	if ps.RestartPolicy != RestartPolicyAlways || *ps.TerminationGracePeriodSeconds != 30 {
		t.Errorf("pod defaults %+v", ps)
	}
	if *ps.Volumes[0].ConfigMap.DefaultMode != 0o644 || *ps.Volumes[1].Secret.DefaultMode != 0o644 || *ps.Volumes[2].HostPath.Type != "" {
		t.Errorf("volume defaults %+v", ps.Volumes)
	}
	pulls := []PullPolicy{PullAlways, PullAlways, PullIfNotPresent, PullIfNotPresent, PullAlways}
	for i, c := range ps.Containers {
		if c.ImagePullPolicy != pulls[i] {
			t.Errorf("container %s pull policy %s, want %s", c.Name, c.ImagePullPolicy, pulls[i])
		}
	}
	c := ps.Containers[0]
	if c.Ports[0].Protocol != ProtocolTCP {
		t.Errorf("port protocol %q", c.Ports[0].Protocol)
	}
	if h := c.ReadinessProbe.HTTPGet; h.Scheme != URISchemeHTTP || h.Path != "/" {
		t.Errorf("httpGet defaults %+v", h)
	}
	svc := objs[1].(*Service)
	if svc.Spec.Type != ServiceTypeClusterIP || svc.Spec.Ports[0].TargetPort != FromInt(80) || svc.Spec.Ports[0].Protocol != ProtocolTCP ||
		*svc.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds != 10800 {
		t.Errorf("service defaults %+v", svc.Spec)
	}
	sec := objs[2].(*Secret)
	if string(sec.Data["a"]) != "a" || string(sec.Data["b"]) != "plain" || sec.StringData != nil || sec.Type != SecretTypeOpaque {
		t.Errorf("secret defaults %+v", sec)
	}
	if ns := objs[3].(*Namespace); ns.Namespace != "" {
		t.Errorf("namespace got a namespace %q", ns.Namespace)
	}
	// Idempotent.
	before, _ := json.Marshal(objs)
	for _, o := range objs {
		SetDefaults(o)
	}
	after, _ := json.Marshal(objs)
	if string(before) != string(after) {
		t.Errorf("SetDefaults is not idempotent")
	}
}

func TestValidateInCode(t *testing.T) {
	pod := &Pod{TypeMeta: TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: ObjectMeta{Name: "p"}}
	SetDefaults(pod)
	errs := Validate([]Object{pod})
	if len(errs) != 1 || errs[0].Error() != "spec.containers: required; a pod needs at least one container" {
		t.Errorf("errors %v", errs)
	}
}

func TestValidationRules(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // one expected error, exact
	}{
		{"container names unique across init", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers: [{name: a, image: x}]
  containers: [{name: a, image: x}]
`, `a.yaml:6: spec.containers[0].name: duplicate container name "a"; names must be unique across containers and initContainers`},
		{"surge and unavailable zero", `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {a: b}}
  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: "0%"}}
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: x}]}
`, `a.yaml:6: spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0; the rollout could never make progress`},
		{"bad percent", `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {a: b}}
  strategy:
    rollingUpdate:
      maxSurge: 25 %
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: x}]}
`, `a.yaml:8: spec.strategy.rollingUpdate.maxSurge: invalid value "25 %": must be an integer or a percentage such as 25%`},
		{"deployment pods restart always", `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchExpressions: [{key: a, operator: In, values: [b]}]}
  template:
    metadata: {labels: {a: b}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: x}]
`, `a.yaml:9: spec.template.spec.restartPolicy: a Deployment's pods must have restartPolicy Always, not Never`},
		{"match expression needs values", `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchExpressions: [{key: a, operator: In}]}
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: x}]}
`, `a.yaml:5: spec.selector: matchExpressions[0]: operator In needs at least one value`},
		{"port name syntax", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    ports:
    - {name: 8080, containerPort: 8080}
`, `a.yaml:9: spec.containers[0].ports[0].name: expected a string, found the number 8080; quote it: "8080"`},
		{"port name without letter", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    ports:
    - {name: "8080", containerPort: 70000}
`, `a.yaml:9: spec.containers[0].ports[0].containerPort: must be between 1 and 65535, is 70000`},
		{"node port range", `apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 80}]
`, `a.yaml:6: spec.ports[0].nodePort: must be between 30000 and 32767, is 80`},
		{"headless node port", `apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: NodePort
  clusterIP: None
  ports: [{port: 80}]
`, `a.yaml:6: spec.clusterIP: a NodePort Service cannot be headless (clusterIP: None)`},
		{"service name must start with a letter", `apiVersion: v1
kind: Service
metadata: {name: 1web}
spec:
  ports: [{port: 80}]
`, `a.yaml:3: metadata.name: "1web" must start with a lowercase letter`},
		{"env exactly one source", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    env:
    - name: A
      valueFrom:
        fieldRef: {fieldPath: spec.restartPolicy}
`, `a.yaml:11: spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: "spec.restartPolicy" is not supported here; use one of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs, metadata.labels['KEY'], metadata.annotations['KEY']`},
		{"probe needs one handler", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    livenessProbe:
      exec: {command: [true]}
      tcpSocket: {port: 80}
`, `a.yaml:9: spec.containers[0].livenessProbe.exec.command[0]: expected a string, found the boolean true; quote it: "true"`},
		{"probe handlers", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    livenessProbe:
      exec: {command: ["true"]}
      tcpSocket: {port: 80}
`, `a.yaml:8: spec.containers[0].livenessProbe: has 2 handlers; use exactly one of exec, httpGet, tcpSocket, grpc`},
		{"capability", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    securityContext:
      capabilities: {add: [NET_ADMIN, FLY]}
`, `a.yaml:9: spec.containers[0].securityContext.capabilities.add[1]: unknown capability "FLY"; use a Linux capability name such as NET_BIND_SERVICE, or ALL`},
		{"run as non root with root user", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {runAsUser: 0}
  containers:
  - name: c
    image: x
    securityContext:
      runAsNonRoot: true
`, `a.yaml:10: spec.containers[0].securityContext.runAsNonRoot: contradicts runAsUser: 0; set runAsUser to a non-zero user or drop runAsNonRoot`},
		{"seccomp localhost", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext:
    seccompProfile: {type: Localhost}
  containers: [{name: c, image: x}]
`, `a.yaml:6: spec.securityContext.seccompProfile.localhostProfile: required when type is Localhost; give the profile's path relative to the node's seccomp directory`},
		{"duplicate mount path", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes: [{name: a, emptyDir: {}}, {name: b, emptyDir: {}}]
  containers:
  - name: c
    image: x
    volumeMounts:
    - {name: a, mountPath: /data}
    - {name: b, mountPath: /data/}
`, `a.yaml:11: spec.containers[0].volumeMounts[1].mountPath: another volume is already mounted at "/data/"`},
		{"volume with two sources", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes:
  - name: a
    emptyDir: {}
    hostPath: {path: /x}
  containers: [{name: c, image: x}]
`, `a.yaml:6: spec.volumes[0]: has 2 volume sources; use exactly one of emptyDir, configMap, secret, downwardAPI, hostPath, persistentVolumeClaim`},
		{"config key in data and binaryData", `apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {a: x, "b c": y}
binaryData: {a: eA==}
`, `a.yaml:4: data[b c]: key "b c" may contain only letters, digits, '-', '_' and '.'`},
		{"label value", `apiVersion: v1
kind: Namespace
metadata:
  name: n
  labels: {"example.com/team": "-bad"}
`, `a.yaml:5: metadata.labels[example.com/team]: label value "-bad": must be empty or consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
		{"host port twice", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81, hostPort: 8080}]
`, `a.yaml:8: spec.containers[0].ports[1].hostPort: host port 8080/TCP is already taken by containers[0].ports[0] of this pod; give each its own host port`},
		{"generateName not yet", `apiVersion: v1
kind: Pod
metadata: {generateName: p-}
spec:
  containers: [{name: c, image: x}]
`, `a.yaml:3: metadata.generateName: supported by Kubernetes, not by Shoal yet on a Pod: Shoal names Jobs from generateName (as Argo CD and Helm hooks use it) and applies every other object by name; set metadata.name`},
		{"pvc without claim name", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes: [{name: a, persistentVolumeClaim: {claimName: ""}}]
  containers: [{name: c, image: x}]
`, `a.yaml:5: spec.volumes[0].persistentVolumeClaim.claimName: required; name the PersistentVolumeClaim`},
		{"gpu not yet", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: x
    resources:
      limits: {nvidia.com/gpu: 1}
`, `a.yaml:9: spec.containers[0].resources.limits[nvidia.com/gpu]: resource "nvidia.com/gpu" is supported by Kubernetes, not by Shoal yet; Shoal supports cpu, memory and ephemeral-storage`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := DecodeFile("a.yaml", []byte(tt.doc), LoadOptions{})
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			found := false
			for _, g := range got {
				found = found || g == tt.want
			}
			if !found {
				t.Errorf("errors:\n%s\nwant among them:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}

func TestToleratedKubectlOutput(t *testing.T) {
	doc := `apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      creationTimestamp: null
      labels: {app: web}
    spec:
      dnsPolicy: ClusterFirst
      schedulerName: default-scheduler
      serviceAccountName: default
      enableServiceLinks: true
      containers:
      - name: web
        image: nginx:1.27
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
        resources: {}
status:
  replicas: 3
  conditions:
  - type: Available
    status: "True"
`
	if _, errs := DecodeFile("a.yaml", []byte(doc), LoadOptions{}); errs != nil {
		t.Fatal(errs)
	}
	bad := strings.Replace(doc, "dnsPolicy: ClusterFirst", "dnsPolicy: Cluster", 1)
	_, errs := DecodeFile("a.yaml", []byte(bad), LoadOptions{})
	if len(errs) != 1 || errs[0].Error() != `a.yaml:14: spec.template.spec.dnsPolicy: "Cluster" is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None` {
		t.Errorf("errors %v", errs)
	}
}

func TestMarshal(t *testing.T) {
	objs, errs := DecodeFile("a.yaml", []byte(deployWeb+"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n"), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	y, err := Marshal(objs, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	back, errs := DecodeFile("back.yaml", y, LoadOptions{})
	if errs != nil {
		t.Fatalf("rendered YAML does not load: %v\n%s", errs, y)
	}
	if !reflect.DeepEqual(back, objs) {
		t.Errorf("round trip differs:\n%s", y)
	}
	j, err := Marshal(objs, "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		APIVersion, Kind string
		Items            []map[string]any
	}
	if err := json.Unmarshal(j, &list); err != nil || list.Kind != "List" || list.APIVersion != "v1" || len(list.Items) != 2 || list.Items[1]["kind"] != "ConfigMap" {
		t.Errorf("json list %s (%v)", j, err)
	}
	if _, err := Marshal(objs, "xml"); err == nil {
		t.Errorf("xml accepted")
	}
	cp := objs[0].DeepCopyObject().(*Deployment)
	cp.Spec.Template.Spec.Containers[0].Image = "changed"
	if objs[0].(*Deployment).Spec.Template.Spec.Containers[0].Image == "changed" {
		t.Errorf("DeepCopyObject shares memory")
	}
}

func TestQuantity(t *testing.T) {
	tests := []struct {
		in          string
		milli, val  int64
		errContains string
	}{
		{"100m", 100, 1, ""},
		{"1", 1000, 1, ""},
		{"0.5", 500, 1, ""},
		{"2000m", 2000, 2, ""},
		{"128Mi", 128 << 20 * 1000, 128 << 20, ""},
		{"1Gi", 1 << 30 * 1000, 1 << 30, ""},
		{"1G", 1e12, 1e9, ""},
		{"1k", 1e6, 1000, ""},
		{"1e3", 1e6, 1000, ""},
		{"1E3", 1e6, 1000, ""},
		{"1.5e-3", 2, 1, ""},
		{"+1", 1000, 1, ""},
		{"-1", -1000, -1, ""},
		{"10Ei", math.MaxInt64, math.MaxInt64, ""},
		{"1n", 1, 1, ""},
		{".5", 500, 1, ""},
		{"", 0, 0, "empty"},
		{"abc", 0, 0, "no digits"},
		{"1x", 0, 0, "unknown suffix"},
		{"1Ki2", 0, 0, "unknown suffix"},
		{"1e", 0, 0, "exponent has no digits"},
		{"1e1000", 0, 0, "out of range"},
		{"1 m", 0, 0, "unknown suffix"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := ParseQuantity(tt.in)
			if tt.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("error %v, want %q", err, tt.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.MilliValue() != tt.milli || q.Value() != tt.val {
				t.Errorf("milli %d value %d, want %d %d", q.MilliValue(), q.Value(), tt.milli, tt.val)
			}
			var back Quantity
			data, _ := json.Marshal(q)
			if err := json.Unmarshal(data, &back); err != nil || back != q {
				t.Errorf("json round trip %s -> %v %v", data, back, err)
			}
		})
	}
	var q Quantity
	if err := json.Unmarshal([]byte("0.25"), &q); err != nil || q.MilliValue() != 250 {
		t.Errorf("json number: %v %v", q, err)
	}
	a, _ := ParseQuantity("1Gi")
	b, _ := ParseQuantity("1G")
	if a.Cmp(b) != 1 || b.Cmp(a) != -1 || a.Cmp(a) != 0 {
		t.Errorf("Cmp wrong")
	}
}

func TestSelector(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "frontend", "env": ""}
	tests := []struct {
		in      string
		str     string
		matches bool
		err     bool
	}{
		{"", "", true, false},
		{"app=web", "app=web", true, false},
		{"app==web", "app==web", true, false},
		{"app!=web", "app!=web", false, false},
		{"missing!=x", "missing!=x", true, false},
		{"app in (db, web)", "app in (db,web)", true, false},
		{"app notin (web)", "app notin (web)", false, false},
		{"missing notin (web)", "missing notin (web)", true, false},
		{"tier", "tier", true, false},
		{"!tier", "!tier", false, false},
		{"!missing", "!missing", true, false},
		{"env=", "env=", true, false},
		{" tier = frontend , app in (web) ", "app in (web),tier=frontend", true, false},
		{"example.com/team=a", "example.com/team=a", false, false},
		{"app=", "app=", false, false},
		{"app in web", "", false, true},
		{"app in (web", "", false, true},
		{"a b", "", false, true},
		{"=x", "", false, true},
		{"app=-bad", "", false, true},
		{"app,", "", false, true},
		{"a=b=c", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseSelector(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("no error; parsed as %q", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tt.str {
				t.Errorf("String() %q, want %q", s, tt.str)
			}
			if s.Matches(labels) != tt.matches {
				t.Errorf("Matches %v, want %v", !tt.matches, tt.matches)
			}
			again, err := ParseSelector(s.String())
			if err != nil || again.String() != s.String() {
				t.Errorf("re-parse %q: %q %v", s, again, err)
			}
		})
	}
	if Nothing().Matches(labels) || !Everything().Matches(labels) {
		t.Errorf("Nothing/Everything wrong")
	}
	s, err := SelectorFromLabelSelector(&LabelSelector{
		MatchLabels:      map[string]string{"app": "web"},
		MatchExpressions: []LabelSelectorRequirement{{Key: "tier", Operator: LabelSelectorOpIn, Values: []string{"frontend", "backend"}}, {Key: "x", Operator: LabelSelectorOpDoesNotExist}},
	})
	if err != nil || s.String() != "app=web,tier in (backend,frontend),!x" || !s.Matches(labels) {
		t.Errorf("from label selector: %q %v", s, err)
	}
	if _, err := SelectorFromLabelSelector(&LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "a", Operator: LabelSelectorOpExists, Values: []string{"x"}}}}); err == nil {
		t.Errorf("Exists with values accepted")
	}
	if s, _ := SelectorFromLabelSelector(nil); s.Matches(labels) {
		t.Errorf("nil selector matches")
	}
}

func TestSupportedKinds(t *testing.T) {
	if got := strings.Join(SupportedKinds(), ","); got != "ClusterRole,ClusterRoleBinding,ConfigMap,CronJob,DaemonSet,Deployment,HorizontalPodAutoscaler,Job,Namespace,PersistentVolumeClaim,Pod,PodDisruptionBudget,Role,RoleBinding,Secret,Service,ServiceAccount,StatefulSet,StorageClass" {
		t.Errorf("kinds %s", got)
	}
}

func TestObjectKeyString(t *testing.T) {
	if s := (ObjectKey{Kind: "Namespace", Name: "a"}).String(); s != "Namespace a" {
		t.Error(s)
	}
}
