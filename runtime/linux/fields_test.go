package linux_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/imagetest"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/runtimetest"
)

// fieldPods are pods that, together, set every Pod field docs/manifest-support.md marks as
// supported, each with a value a user would write. {{IMAGE}} is the test program
// (tests/testapp), {{GRPC}} the gRPC health server, {{HOSTDIR}} a directory the node allows for
// hostPath volumes, {{REGISTRY}} the image registry. Every PersistentVolumeClaim a pod names gets
// a fresh volume directory. Documents of other kinds are what the pods
// refer to.
var fieldPods = map[string]string{
	"volumes": `
apiVersion: v1
kind: Pod
metadata:
  name: f-volumes
  labels: {app: fields}
  annotations: {shoal.dev/test: volumes}
spec:
  volumes:
  - name: host
    hostPath: {path: "{{HOSTDIR}}", type: Directory}
  - name: memory
    emptyDir: {medium: Memory, sizeLimit: 16Mi}
  - name: disk
    emptyDir: {sizeLimit: 16Mi}
  - name: data
    persistentVolumeClaim: {claimName: f-data}
  - name: data-view
    persistentVolumeClaim: {claimName: f-data, readOnly: true}
  - name: secret
    secret:
      secretName: f-secret
      defaultMode: 0440
      optional: false
      items: [{key: password, path: pw, mode: 0400}]
  - name: config
    configMap:
      name: f-config
      defaultMode: 0444
      optional: true
      items: [{key: greeting, path: greeting.txt, mode: 0440}]
  - name: info
    downwardAPI:
      defaultMode: 0444
      items:
      - path: labels
        fieldRef: {apiVersion: v1, fieldPath: metadata.labels}
      - path: memory
        mode: 0400
        resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}
  initContainers:
  - name: prepare
    image: "{{IMAGE}}"
    args: [write, /data/ready, "yes"]
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: disk, mountPath: /disk}
    - {name: memory, mountPath: /scratch, subPath: init}
    - {name: config, mountPath: /config, readOnly: true}
  containers:
  - name: app
    image: "{{IMAGE}}"
    args: [serve, "8080"]
    resources:
      limits: {cpu: 500m, memory: 64Mi, ephemeral-storage: 64Mi}
      requests: {cpu: 100m, memory: 32Mi, ephemeral-storage: 32Mi}
    readinessProbe:
      exec: {command: [/testapp, read, /data/ready]}
      periodSeconds: 1
    volumeMounts:
    - {name: host, mountPath: /host, readOnly: true}
    - {name: memory, mountPath: /scratch}
    - {name: disk, mountPath: /disk}
    - {name: disk, mountPath: /sub, subPath: sub}
    - {name: data-view, mountPath: /data}
    - {name: secret, mountPath: /secret, readOnly: true}
    - {name: config, mountPath: /etc/greeting.txt, subPath: greeting.txt}
    - {name: info, mountPath: /info}
`,
	"env": `
apiVersion: v1
kind: Pod
metadata: {name: f-env, namespace: default}
spec:
  restartPolicy: OnFailure
  initContainers:
  - name: init
    image: "{{IMAGE}}"
    imagePullPolicy: IfNotPresent
    command: [/testapp]
    args: [exit, "0"]
    workingDir: /
    ports: [{name: init, containerPort: 9000, protocol: TCP, hostPort: 19000, hostIP: 127.0.0.1}]
    resources: {limits: {memory: 32Mi}, requests: {memory: 16Mi}}
    terminationMessagePath: /dev/init-termination-log
    terminationMessagePolicy: FallbackToLogsOnError
    envFrom:
    - {prefix: CM_, configMapRef: {name: f-config, optional: false}}
    - {prefix: SEC_, secretRef: {name: f-secret, optional: true}}
    env:
    - {name: PLAIN, value: plain}
    - name: NODE
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}
    - name: MEMORY
      valueFrom: {resourceFieldRef: {containerName: init, resource: limits.memory, divisor: 1Mi}}
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: f-config, key: greeting, optional: false}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: f-secret, key: password, optional: true}}
  containers:
  - name: app
    image: "{{IMAGE}}"
    imagePullPolicy: Always
    command: [/testapp]
    args: [serve, "8080"]
    workingDir: /tmp
    ports:
    - {name: http, containerPort: 8080, protocol: TCP, hostPort: 18080, hostIP: 127.0.0.1}
    - {name: dns, containerPort: 53, protocol: UDP}
    terminationMessagePath: /tmp/termination-log
    terminationMessagePolicy: File
    envFrom:
    - {prefix: CM_, configMapRef: {name: f-config, optional: true}}
    - {secretRef: {name: f-secret, optional: false}}
    env:
    - {name: PLAIN, value: "$(GREETING) plain"}
    - name: IP
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: status.podIP}}
    - name: CPU
      valueFrom: {resourceFieldRef: {containerName: app, resource: requests.cpu, divisor: 1m}}
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: f-config, key: greeting, optional: true}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: f-secret, key: password, optional: false}}
`,
	"probes": `
apiVersion: v1
kind: Pod
metadata: {name: f-probes}
spec:
  initContainers:
  - name: sidecar-a
    image: "{{IMAGE}}"
    args: [serve, "8091"]
    restartPolicy: Always
    livenessProbe:
      httpGet:
        path: /healthz
        port: 8091
        host: 127.0.0.1
        scheme: HTTP
        httpHeaders: [{name: X-Probe, value: liveness}]
      initialDelaySeconds: 1
      timeoutSeconds: 2
      periodSeconds: 2
      successThreshold: 1
      failureThreshold: 5
      terminationGracePeriodSeconds: 3
    readinessProbe:
      tcpSocket: {port: 8091, host: 127.0.0.1}
      initialDelaySeconds: 0
      timeoutSeconds: 2
      periodSeconds: 1
      successThreshold: 2
      failureThreshold: 5
    startupProbe:
      exec: {command: [/testapp, get, "http://127.0.0.1:8091/healthz"]}
      initialDelaySeconds: 0
      timeoutSeconds: 2
      periodSeconds: 1
      successThreshold: 1
      failureThreshold: 30
      terminationGracePeriodSeconds: 3
  - name: sidecar-grpc
    image: "{{GRPC}}"
    args: ["9091", "api=SERVING"]
    restartPolicy: Always
    livenessProbe:
      grpc: {port: 9091, service: api}
      periodSeconds: 2
    readinessProbe:
      grpc: {port: 9091, service: api}
      periodSeconds: 1
    startupProbe:
      grpc: {port: 9091, service: api}
      periodSeconds: 1
      failureThreshold: 30
  - name: sidecar-b
    image: "{{IMAGE}}"
    args: [serve, "8092"]
    restartPolicy: Always
    livenessProbe:
      exec: {command: [/testapp, exit, "0"]}
      periodSeconds: 2
    readinessProbe:
      httpGet:
        path: /healthz
        port: 8092
        host: 127.0.0.1
        scheme: HTTP
        httpHeaders: [{name: X-Probe, value: readiness}]
      periodSeconds: 1
    startupProbe:
      tcpSocket: {port: 8092, host: 127.0.0.1}
      periodSeconds: 1
      failureThreshold: 30
  - name: sidecar-c
    image: "{{IMAGE}}"
    args: [serve, "8093"]
    restartPolicy: Always
    livenessProbe:
      tcpSocket: {port: 8093, host: 127.0.0.1}
      periodSeconds: 2
    readinessProbe:
      exec: {command: [/testapp, get, "http://127.0.0.1:8093/healthz"]}
      periodSeconds: 1
    startupProbe:
      httpGet:
        path: /healthz
        port: 8093
        host: 127.0.0.1
        scheme: HTTP
        httpHeaders: [{name: X-Probe, value: startup}]
      periodSeconds: 1
      failureThreshold: 30
  containers:
  - name: a
    image: "{{IMAGE}}"
    args: [serve, "8081"]
    livenessProbe:
      httpGet:
        path: /healthz
        port: 8081
        host: 127.0.0.1
        scheme: HTTP
        httpHeaders: [{name: X-Probe, value: liveness}]
      initialDelaySeconds: 1
      timeoutSeconds: 2
      periodSeconds: 2
      successThreshold: 1
      failureThreshold: 5
      terminationGracePeriodSeconds: 3
    readinessProbe:
      tcpSocket: {port: 8081, host: 127.0.0.1}
      initialDelaySeconds: 0
      timeoutSeconds: 2
      periodSeconds: 1
      successThreshold: 2
      failureThreshold: 5
    startupProbe:
      exec: {command: [/testapp, get, "http://127.0.0.1:8081/healthz"]}
      initialDelaySeconds: 0
      timeoutSeconds: 2
      periodSeconds: 1
      successThreshold: 1
      failureThreshold: 30
      terminationGracePeriodSeconds: 3
  - name: grpc
    image: "{{GRPC}}"
    args: ["9090", "api=SERVING"]
    livenessProbe:
      grpc: {port: 9090, service: api}
      periodSeconds: 2
    readinessProbe:
      grpc: {port: 9090, service: api}
      periodSeconds: 1
    startupProbe:
      grpc: {port: 9090, service: api}
      periodSeconds: 1
      failureThreshold: 30
  - name: b
    image: "{{IMAGE}}"
    args: [serve, "8082"]
    livenessProbe:
      exec: {command: [/testapp, exit, "0"]}
      periodSeconds: 2
    readinessProbe:
      httpGet:
        path: /healthz
        port: 8082
        host: 127.0.0.1
        scheme: HTTP
        httpHeaders: [{name: X-Probe, value: readiness}]
      periodSeconds: 1
    startupProbe:
      tcpSocket: {port: 8082, host: 127.0.0.1}
      periodSeconds: 1
      failureThreshold: 30
  - name: c
    image: "{{IMAGE}}"
    args: [serve, "8083"]
    livenessProbe:
      tcpSocket: {port: 8083, host: 127.0.0.1}
      periodSeconds: 2
    readinessProbe:
      exec: {command: [/testapp, get, "http://127.0.0.1:8083/healthz"]}
      periodSeconds: 1
    startupProbe:
      httpGet:
        path: /healthz
        port: 8083
        host: 127.0.0.1
        scheme: HTTP
        httpHeaders: [{name: X-Probe, value: startup}]
      periodSeconds: 1
      failureThreshold: 30
`,
	"hooks": `
apiVersion: v1
kind: Pod
metadata: {name: f-hooks}
spec:
  terminationGracePeriodSeconds: 10
  initContainers:
  - name: web
    image: "{{IMAGE}}"
    args: [serve, "8090"]
    restartPolicy: Always
    startupProbe:
      tcpSocket: {port: 8090}
      periodSeconds: 1
      failureThreshold: 30
    lifecycle:
      postStart:
        exec: {command: [/testapp, exit, "0"]}
      preStop:
        httpGet:
          path: /healthz
          port: 8090
          host: 127.0.0.1
          scheme: HTTP
          httpHeaders: [{name: X-Hook, value: preStop}]
  - name: hooked-sidecar
    image: "{{IMAGE}}"
    args: [serve, "8094"]
    restartPolicy: Always
    lifecycle:
      postStart:
        httpGet:
          path: /healthz
          port: 8090
          host: 127.0.0.1
          scheme: HTTP
          httpHeaders: [{name: X-Hook, value: postStart}]
      preStop:
        sleep: {seconds: 1}
  - name: sleepy-sidecar
    image: "{{IMAGE}}"
    args: [serve, "8095"]
    restartPolicy: Always
    lifecycle:
      postStart:
        sleep: {seconds: 1}
      preStop:
        exec: {command: [/testapp, exit, "0"]}
  containers:
  - name: a
    image: "{{IMAGE}}"
    args: [serve, "8081"]
    lifecycle:
      postStart:
        httpGet:
          path: /healthz
          port: 8090
          host: 127.0.0.1
          scheme: HTTP
          httpHeaders: [{name: X-Hook, value: postStart}]
      preStop:
        exec: {command: [/testapp, exit, "0"]}
  - name: b
    image: "{{IMAGE}}"
    args: [serve, "8082"]
    lifecycle:
      postStart:
        exec: {command: [/testapp, exit, "0"]}
      preStop:
        httpGet:
          path: /healthz
          port: 8082
          host: 127.0.0.1
          scheme: HTTP
          httpHeaders: [{name: X-Hook, value: preStop}]
  - name: c
    image: "{{IMAGE}}"
    args: [serve, "8083"]
    lifecycle:
      postStart:
        sleep: {seconds: 1}
      preStop:
        sleep: {seconds: 1}
`,
	"security": `
apiVersion: v1
kind: Pod
metadata: {name: f-security}
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    runAsNonRoot: true
    supplementalGroups: [2000]
    fsGroup: 3000
    seccompProfile: {type: Localhost, localhostProfile: profiles/allow.json}
  volumes:
  - name: data
    emptyDir: {}
  initContainers:
  - name: init
    image: "{{IMAGE}}"
    args: [write, /data/ok, "yes"]
    volumeMounts: [{name: data, mountPath: /data}]
    securityContext:
      capabilities: {add: [CHOWN], drop: [ALL]}
      runAsUser: 1001
      runAsGroup: 1001
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      seccompProfile: {type: Localhost, localhostProfile: profiles/allow.json}
  - name: privileged-init
    image: "{{IMAGE}}"
    args: [exit, "0"]
    securityContext:
      privileged: true
  containers:
  - name: app
    image: "{{IMAGE}}"
    args: [serve, "8080"]
    volumeMounts: [{name: data, mountPath: /data}]
    securityContext:
      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
      runAsUser: 1001
      runAsGroup: 1001
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      seccompProfile: {type: Localhost, localhostProfile: profiles/allow.json}
  - name: privileged
    image: "{{IMAGE}}"
    args: [serve, "8081"]
    securityContext:
      privileged: true
  - name: pod-profile
    image: "{{IMAGE}}"
    args: [serve, "8082"]
  - name: default-profile
    image: "{{IMAGE}}"
    args: [serve, "8083"]
    securityContext:
      seccompProfile: {type: RuntimeDefault}
`,
	"pod": `
apiVersion: v1
kind: Pod
metadata: {name: f-pod, labels: {app: fields}}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  nodeSelector: {kubernetes.io/os: linux}
  hostname: fields
  subdomain: fields
  serviceAccountName: default
  serviceAccount: default
  automountServiceAccountToken: false
  imagePullSecrets: [{name: f-pull}]
  hostAliases:
  - ip: 127.0.0.2
    hostnames: [db.local, cache.local]
  dnsPolicy: None
  dnsConfig:
    nameservers: [127.0.0.53]
    searches: [svc.cluster.local]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  tolerations:
  - {key: dedicated, operator: Equal, value: fields, effect: NoExecute, tolerationSeconds: 60}
  - {operator: Exists}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: DoNotSchedule
    minDomains: 1
    nodeAffinityPolicy: Honor
    nodeTaintsPolicy: Ignore
    matchLabelKeys: [pod-template-hash]
    labelSelector:
      matchLabels: {app: fields}
      matchExpressions: [{key: tier, operator: NotIn, values: [db]}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]
          matchFields: [{key: metadata.name, operator: NotIn, values: [elsewhere]}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 10
        preference:
          matchExpressions: [{key: disk, operator: In, values: [ssd]}]
          matchFields: [{key: metadata.name, operator: In, values: [here]}]
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        namespaces: [default]
        labelSelector:
          matchLabels: {app: fields}
          matchExpressions: [{key: app, operator: In, values: [fields]}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 5
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          namespaces: [default]
          labelSelector:
            matchLabels: {app: cache}
            matchExpressions: [{key: tier, operator: In, values: [cache]}]
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        namespaces: [default]
        labelSelector:
          matchLabels: {app: other}
          matchExpressions: [{key: tier, operator: In, values: [db]}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          namespaces: [default]
          labelSelector:
            matchLabels: {app: fields}
            matchExpressions: [{key: tier, operator: NotIn, values: [db]}]
  containers:
  - name: app
    image: "{{IMAGE}}"
    args: [serve, "8080"]
`,
}

// fieldObjects are the ConfigMaps and Secrets the field pods use.
const fieldObjects = `
apiVersion: v1
kind: ConfigMap
metadata: {name: f-config}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: f-secret}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: f-pull}
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: "{{PULLSECRET}}"
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: f-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
`

// fieldsNeverAccepted are supported fields that validation refuses where the field pods would
// set them, as Kubernetes does: they cannot reach a node from there.
var fieldsNeverAccepted = map[string]string{
	"spec.containers[].restartPolicy":                                    "only init containers may set a container restartPolicy (sidecars)",
	"spec.containers[].readinessProbe.terminationGracePeriodSeconds":     "Kubernetes refuses it on readiness probes",
	"spec.initContainers[].readinessProbe.terminationGracePeriodSeconds": "Kubernetes refuses it on readiness probes",
}

// TestEverySupportedPodFieldRuns runs, on the libcontainer runtime, pods that together set every
// field docs/manifest-support.md marks as supported. Whatever validation accepts must run: each
// pod must validate, become Ready without a restart, and be removed cleanly.
func TestEverySupportedPodFieldRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the libcontainer runtime needs root")
	}
	registry := imagetest.StartRegistry(t)
	ref, grpcRef := registry+"/testapp:v1", registry+"/grpchealth:v1"
	imagetest.Push(t, imagetest.TestAppImage(t), ref)
	imagetest.Push(t, imagetest.GRPCHealthImage(t), grpcRef)

	n := newNode(t, registry)
	hostDir := t.TempDir()
	profiles := t.TempDir()
	if err := os.MkdirAll(filepath.Join(profiles, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(profiles, "profiles", "allow.json"), []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	pull, err := json.Marshal(map[string]any{"auths": map[string]any{registry: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("user:pass"))}}})
	if err != nil {
		t.Fatal(err)
	}
	expand := strings.NewReplacer("{{IMAGE}}", ref, "{{GRPC}}", grpcRef, "{{HOSTDIR}}", hostDir,
		"{{PULLSECRET}}", base64.StdEncoding.EncodeToString(pull)).Replace

	// Every supported field must be set by a field pod, so that a field added to the code
	// without a sample here fails this test.
	set := map[string]bool{}
	for _, doc := range fieldPods {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(expand(doc)), &m); err != nil {
			t.Fatal(err)
		}
		collectPaths(m, "", set)
	}
	for _, p := range manifests.SupportedFields("Pod") {
		if !set[p] && fieldsNeverAccepted[p] == "" {
			t.Errorf("no field pod sets %s: add it to fieldPods with a value a user would write", p)
		}
	}

	objs, errs := manifests.DecodeFile("objects.yaml", []byte(expand(fieldObjects)), manifests.LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	configMaps, secrets := map[string]*manifests.ConfigMap{}, map[string]*manifests.Secret{}
	for _, o := range objs {
		switch o := o.(type) {
		case *manifests.ConfigMap:
			configMaps[o.Name] = o
		case *manifests.Secret:
			secrets[o.Name] = o
		}
	}

	m, err := lifecycle.New(lifecycle.Config{Driver: n.driver, Backoff: lifecycle.Backoff{Base: 200 * time.Millisecond},
		Node:   lifecycle.NodeInfo{Name: "node-1", HostIPs: []string{"127.0.0.1"}},
		Policy: lifecycle.Policy{AllowPrivileged: true, AllowHostPaths: []string{hostDir}, SeccompProfileRoot: profiles}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	names := make([]string, 0, len(fieldPods))
	for name := range fieldPods {
		names = append(names, name)
	}
	slices.Sort(names)
	specs := map[string]*runtime.PodSpec{}
	ctx := context.Background()
	for _, name := range names {
		file := name + ".yaml"
		decoded, errs := manifests.DecodeFile(file, []byte(expand(fieldPods[name])), manifests.LoadOptions{})
		if errs != nil {
			t.Errorf("validation refuses the field pod %s: %v", name, errs)
			continue
		}
		pod := decoded[0].(*manifests.Pod)
		spec := &runtime.PodSpec{UID: fmt.Sprintf("fields-%s-%s", name, randomSuffix(t)), Pod: pod, ConfigMaps: configMaps, Secrets: secrets}
		for _, v := range pod.Spec.Volumes {
			if c := v.PersistentVolumeClaim; c != nil && spec.Claims[c.ClaimName].Path == "" {
				if spec.Claims == nil {
					spec.Claims = map[string]runtime.ClaimVolume{}
				}
				dir := t.TempDir()
				if err := os.Chmod(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				spec.Claims[c.ClaimName] = runtime.ClaimVolume{UID: "claim-" + c.ClaimName, Path: dir}
			}
		}
		if err := m.EnsurePod(ctx, spec); err != nil {
			t.Errorf("EnsurePod %s: %v", name, err)
			continue
		}
		specs[name] = spec
		t.Cleanup(func() {
			if err := m.RemovePod(context.Background(), spec.UID, nil); err != nil {
				t.Errorf("cleanup: remove %s: %v", name, err)
			}
		})
	}
	for _, name := range names {
		spec, ok := specs[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			st := waitPodReady(t, m, spec.UID, 90*time.Second)
			for _, cs := range slices.Concat(st.InitContainerStatuses, st.ContainerStatuses) {
				if cs.RestartCount != 0 {
					t.Errorf("container %s restarted %d times: %s", cs.Name, cs.RestartCount, runtimetest.Describe(st))
				}
			}
			if err := m.RemovePod(ctx, spec.UID, nil); err != nil {
				t.Errorf("remove: %v", err)
			}
		})
	}
}

// collectPaths adds to set the doc path of every field m sets, as
// "spec.containers[].ports[].name".
func collectPaths(m map[string]any, prefix string, set map[string]bool) {
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			set[p] = true
			collectPaths(v, p, set)
		case []any:
			set[p] = true
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					collectPaths(em, p+"[]", set)
				}
			}
		default:
			set[p] = true
		}
	}
}

// waitPodReady waits for the pod's Ready condition, failing at once on a container state that
// means the node cannot run what validation accepted.
func waitPodReady(t *testing.T, m *lifecycle.Manager, uid string, timeout time.Duration) manifests.PodStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last manifests.PodStatus
	for time.Now().Before(deadline) {
		st, err := m.PodStatus(context.Background(), uid)
		if err == nil {
			last = st.Status
			for _, cs := range slices.Concat(last.InitContainerStatuses, last.ContainerStatuses) {
				if cs.RestartCount > 0 {
					t.Fatalf("container %s restarted: %s", cs.Name, runtimetest.Describe(last))
				}
				if w := cs.State.Waiting; w != nil && slices.Contains([]string{"CreateContainerConfigError", "CreateContainerError",
					"RunContainerError", "PostStartHookError", "ErrImagePull", "ImagePullBackOff"}, w.Reason) {
					t.Fatalf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
				}
			}
			for _, c := range last.Conditions {
				if c.Type == manifests.PodReady && c.Status == manifests.ConditionTrue {
					return last
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not ready after %v: %s", timeout, runtimetest.Describe(last))
	return last
}
