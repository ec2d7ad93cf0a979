package manifests

import (
	"slices"
	"strings"
	"testing"
)

// podDoc is a Pod manifest in a.yaml whose spec is spec; spec's first line
// is line 5 of the file.
func podDoc(spec string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n")
	for _, l := range strings.Split(strings.TrimSuffix(spec, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// checkErrors decodes doc as a.yaml and compares every error with want, in
// any order.
func checkErrors(t *testing.T, doc string, want []string) {
	t.Helper()
	_, errs := DecodeFile("a.yaml", []byte(doc), LoadOptions{})
	compareErrors(t, errs, want)
}

func compareErrors(t *testing.T, errs ErrorList, want []string) {
	t.Helper()
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const (
	nodeTerm0  = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
	antiAff    = "spec.affinity.podAntiAffinity"
	labelValue = "must be empty or consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)

func TestPodFieldRules(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []string
	}{
		{"everything valid", `serviceAccountName: default
automountServiceAccountToken: false
imagePullSecrets: [{name: registry}]
hostAliases: [{ip: 10.0.0.1, hostnames: [db.local, cache]}, {ip: "fd00::1"}]
dnsPolicy: None
dnsConfig:
  nameservers: [10.96.0.10, "fd00::10"]
  searches: [shop.svc.cluster.local, my_domain.example., "."]
  options: [{name: ndots, value: "2"}, {name: edns0}]
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions: [{key: disk, operator: In, values: [ssd]}, {key: cores, operator: Gt, values: ["4"]}]
      - matchFields: [{key: metadata.name, operator: NotIn, values: [node-1]}]
    preferredDuringSchedulingIgnoredDuringExecution:
    - {weight: 100, preference: {matchExpressions: [{key: zone, operator: Exists}]}}
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname, namespaces: [shop]}
    preferredDuringSchedulingIgnoredDuringExecution:
    - {weight: 1, podAffinityTerm: {topologyKey: kubernetes.io/hostname}}
tolerations:
- {operator: Exists}
- {key: dedicated, value: web, effect: NoSchedule}
- {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
topologySpreadConstraints:
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: DoNotSchedule
  minDomains: 2
  nodeAffinityPolicy: Ignore
  nodeTaintsPolicy: Honor
  matchLabelKeys: [pod-template-hash]
  labelSelector: {matchLabels: {app: web}}
- {maxSkew: 2, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway}
volumes:
- name: info
  downwardAPI:
    items:
    - {path: labels, fieldRef: {fieldPath: metadata.labels}}
    - {path: app, fieldRef: {fieldPath: "metadata.labels['app']"}}
    - {path: sub/cpu, resourceFieldRef: {containerName: web, resource: limits.cpu, divisor: 1m}, mode: 256}
- {name: scratch, emptyDir: {sizeLimit: 1Gi}}
initContainers:
- name: proxy
  image: proxy:1
  restartPolicy: Always
  ports: [{containerPort: 9901, hostPort: 9901}]
  startupProbe: {tcpSocket: {port: 9901}}
  readinessProbe: {httpGet: {port: 9901, path: /ready}}
  lifecycle: {preStop: {sleep: {seconds: 5}}}
- {name: migrate, image: app:1, ports: [{containerPort: 1, hostPort: 9901}]}
containers:
- name: web
  image: app:1
  ports:
  - {name: http, containerPort: 8080, hostPort: 80}
  - {containerPort: 8081, hostPort: 80, protocol: UDP}
  - {containerPort: 8082, hostPort: 80, hostIP: 127.0.0.1}
  terminationMessagePath: /tmp/done
  terminationMessagePolicy: FallbackToLogsOnError
  livenessProbe: {grpc: {port: 9090}}
  readinessProbe: {grpc: {port: 9090, service: readiness}}
  lifecycle:
    postStart: {httpGet: {port: http, path: /started}}
    preStop: {exec: {command: [sh, -c, sleep 1]}}
  resources:
    limits: {cpu: "1", memory: 1Gi, ephemeral-storage: 2Gi}
    requests: {cpu: 100m, memory: 64Mi, ephemeral-storage: 1Gi}
  env:
  - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
  - {name: ACCOUNT, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
  - {name: HOST_IPS, valueFrom: {fieldRef: {fieldPath: status.hostIPs}}}
  - {name: TEAM, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: "metadata.annotations['Example.com/Team']"}}}
  - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
  - {name: CPU, valueFrom: {resourceFieldRef: {containerName: proxy, resource: requests.cpu, divisor: "1000m"}}}
  - {name: DISK, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage, divisor: "0"}}}
`, nil},
		{"service account names", `serviceAccountName: Web_App
containers: [{name: c, image: x}]
`, []string{`a.yaml:5: spec.serviceAccountName: "Web_App" is not a DNS-1123 subdomain: use lowercase letters, digits, '-' and '.' (such as "example.com")`}},
		{"service account alias differs", `serviceAccountName: a
serviceAccount: b
containers: [{name: c, image: x}]
`, []string{`a.yaml:6: spec.serviceAccount: "b" differs from serviceAccountName "a"; serviceAccount is the deprecated name of serviceAccountName: remove it or give both the same value`}},
		{"image pull secret names", `imagePullSecrets: [{name: ""}, {name: Registry}]
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:5: spec.imagePullSecrets[0].name: required`,
			`a.yaml:5: spec.imagePullSecrets[1].name: "Registry" is not a DNS-1123 subdomain: use lowercase letters, digits, '-' and '.' (such as "example.com")`,
		}},
		{"host aliases", `hostAliases:
- ip: 10.0.0.300
  hostnames: [ok.example, Bad_Name]
- hostnames: [x]
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:6: spec.hostAliases[0].ip: "10.0.0.300" is not an IPv4 or IPv6 address`,
			`a.yaml:7: spec.hostAliases[0].hostnames[1]: "Bad_Name" is not a DNS-1123 subdomain: use lowercase letters, digits, '-' and '.' (such as "example.com")`,
			`a.yaml:8: spec.hostAliases[1].ip: required; give an IPv4 or IPv6 address`,
		}},
		{"dns policy names the supported ones", `dnsPolicy: Cluster
containers: [{name: c, image: x}]
`, []string{`a.yaml:5: spec.dnsPolicy: "Cluster" is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None`}},
		{"dns policy None needs a nameserver", `dnsPolicy: None
dnsConfig: {searches: [a.example]}
containers: [{name: c, image: x}]
`, []string{`a.yaml:5: spec.dnsPolicy: None needs dnsConfig with at least one nameserver (dnsConfig.nameservers), as the pod's resolv.conf has only what dnsConfig says`}},
		{"dns config", `dnsConfig:
  nameservers: [1.1.1.1, 8.8.8.8, 9.9.9.9, 1.0.0.300]
  searches: [ns.svc.cluster.local, "-bad", "."]
  options: [{value: "2"}]
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:6: spec.dnsConfig.nameservers: has 4 nameservers, more than 3 (what a resolver reads); keep at most 3`,
			`a.yaml:6: spec.dnsConfig.nameservers[3]: "1.0.0.300" is not an IPv4 or IPv6 address`,
			`a.yaml:7: spec.dnsConfig.searches[1]: "-bad" is not a DNS domain: use lowercase letters, digits, '-', '_' and '.' (such as "svc.cluster.local")`,
			`a.yaml:8: spec.dnsConfig.options[0].name: required; name the resolver option, such as ndots`,
		}},
		{"dns search limits", "dnsConfig:\n  searches: [" + strings.Repeat("a"+strings.Repeat("b", 62)+",", 33) + "]\ncontainers: [{name: c, image: x}]\n", []string{
			`a.yaml:6: spec.dnsConfig.searches: has 33 search domains, more than 32; keep at most 32`,
			`a.yaml:6: spec.dnsConfig.searches: the search list is 2111 characters (with the spaces between domains), more than 2048`,
		}},
		{"node selector terms required", `affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: []
containers: [{name: c, image: x}]
`, []string{`a.yaml:8: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: required; give at least one node selector term (a node fits when it matches any of them)`}},
		{"node selector requirements", `affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: disk, operator: In}
        - {key: disk, operator: Exists, values: [ssd]}
        - {key: cores, operator: Gt, values: ["4", "8"]}
        - {key: cores, operator: Lt, values: [many]}
        - {key: disk, operator: Near, values: [x]}
        - {key: disk, operator: In, values: ["-x"]}
        - {key: "-disk", operator: Exists}
        matchFields:
        - {key: metadata.name, operator: In, values: [a, b]}
        - {key: metadata.labels, operator: Exists}
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:10: ` + nodeTerm0 + `.matchExpressions[0].values: required when operator is In; list the label values`,
			`a.yaml:11: ` + nodeTerm0 + `.matchExpressions[1].values: must be empty when operator is Exists`,
			`a.yaml:12: ` + nodeTerm0 + `.matchExpressions[2].values: needs exactly one value when operator is Gt: the integer to compare the label with`,
			`a.yaml:13: ` + nodeTerm0 + `.matchExpressions[3].values[0]: "many" is not an integer; Lt compares the node's label as an integer`,
			`a.yaml:14: ` + nodeTerm0 + `.matchExpressions[4].operator: "Near" is not one of In, NotIn, Exists, DoesNotExist, Gt, Lt`,
			`a.yaml:15: ` + nodeTerm0 + `.matchExpressions[5].values[0]: label value "-x": ` + labelValue,
			`a.yaml:16: ` + nodeTerm0 + `.matchExpressions[6].key: label key "-disk": must consist of letters, digits, '-', '_' or '.', start and end with a letter or digit, with an optional DNS prefix (such as "example.com/MyName")`,
			`a.yaml:18: ` + nodeTerm0 + `.matchFields[0].values: needs exactly one value, a node name, when operator is In in matchFields`,
			`a.yaml:19: ` + nodeTerm0 + `.matchFields[1].key: "metadata.labels" is not a node field; matchFields selects on metadata.name only (use matchExpressions for labels)`,
			`a.yaml:19: ` + nodeTerm0 + `.matchFields[1].operator: "Exists" is not supported in matchFields; use In or NotIn`,
		}},
		{"node preference weight, any value", `affinity:
  nodeAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 0
      preference: {matchExpressions: [{key: a, operator: In, values: ["-x"]}]}
containers: [{name: c, image: x}]
`, []string{`a.yaml:8: spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be between 1 and 100, is 0`}},
		{"pod affinity terms", `affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector: {matchLabels: {app: web}}
      topologyKey: topology.kubernetes.io/zone
    - labelSelector: {matchExpressions: [{key: app, operator: In}]}
      topologyKey: ""
      namespaceSelector: {}
      matchLabelKeys: [pod-template-hash]
      mismatchLabelKeys: [tenant]
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 101
      podAffinityTerm: {topologyKey: kubernetes.io/hostname, namespaces: [Bad]}
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - {topologyKey: "bad key"}
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:9: ` + antiAff + `.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: topology key "topology.kubernetes.io/zone" is supported by Kubernetes, not by Shoal yet; Shoal supports kubernetes.io/hostname only (each node its own domain)`,
			`a.yaml:10: ` + antiAff + `.requiredDuringSchedulingIgnoredDuringExecution[1].labelSelector.matchExpressions[0].values: required when operator is In; list the label values`,
			`a.yaml:11: ` + antiAff + `.requiredDuringSchedulingIgnoredDuringExecution[1].topologyKey: required; Shoal supports kubernetes.io/hostname (each node its own domain)`,
			`a.yaml:12: ` + antiAff + `.requiredDuringSchedulingIgnoredDuringExecution[1].namespaceSelector: supported by Kubernetes, not by Shoal yet; list the namespaces under namespaces instead (none: the pod's own namespace)`,
			`a.yaml:13: ` + antiAff + `.requiredDuringSchedulingIgnoredDuringExecution[1].matchLabelKeys: supported by Kubernetes, not by Shoal yet; put the labels and their values in labelSelector instead`,
			`a.yaml:14: ` + antiAff + `.requiredDuringSchedulingIgnoredDuringExecution[1].mismatchLabelKeys: supported by Kubernetes, not by Shoal yet; put the labels and their values in labelSelector instead`,
			`a.yaml:16: ` + antiAff + `.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be between 1 and 100, is 101`,
			`a.yaml:17: ` + antiAff + `.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.namespaces[0]: "Bad" is not a DNS-1123 label: use lowercase letters, digits and '-' (such as "my-name")`,
			`a.yaml:20: spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: label key "bad key": must consist of letters, digits, '-', '_' or '.', start and end with a letter or digit, with an optional DNS prefix (such as "example.com/MyName")`,
		}},
		{"tolerations", `tolerations:
- {operator: Equal, value: x}
- {key: a, operator: Exists, value: x}
- {key: a, operator: Near}
- {key: a, effect: NoSchedule, tolerationSeconds: 5}
- {key: a, effect: Evict}
- {key: "a b", value: "-x"}
- {}
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:6: spec.tolerations[0].operator: must be Exists when key is empty (which tolerates every taint); name a key or use operator: Exists`,
			`a.yaml:7: spec.tolerations[1].value: must be empty when operator is Exists; remove it or use operator: Equal`,
			`a.yaml:8: spec.tolerations[2].operator: "Near" is not one of Equal, Exists`,
			`a.yaml:9: spec.tolerations[3].tolerationSeconds: may only be set when effect is NoExecute (how long the pod stays on a node that gets the taint)`,
			`a.yaml:10: spec.tolerations[4].effect: "Evict" is not one of NoSchedule, PreferNoSchedule, NoExecute (or empty for every effect)`,
			`a.yaml:11: spec.tolerations[5].key: label key "a b": must consist of letters, digits, '-', '_' or '.', start and end with a letter or digit, with an optional DNS prefix (such as "example.com/MyName")`,
			`a.yaml:11: spec.tolerations[5].value: ` + labelValue,
			`a.yaml:12: spec.tolerations[6].operator: must be Exists when key is empty (which tolerates every taint); name a key or use operator: Exists`,
		}},
		{"topology spread constraints", `topologySpreadConstraints:
- {maxSkew: 0, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule}
- {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}
- {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule}
- {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: Maybe, nodeTaintsPolicy: Always}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  minDomains: 0
  matchLabelKeys: [app]
  labelSelector: {matchLabels: {app: web}}
- {maxSkew: 1, topologyKey: "", whenUnsatisfiable: DoNotSchedule, matchLabelKeys: [app]}
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:6: spec.topologySpreadConstraints[0].maxSkew: must be greater than zero, is 0`,
			`a.yaml:7: spec.topologySpreadConstraints[1].minDomains: may only be set when whenUnsatisfiable is DoNotSchedule`,
			`a.yaml:7: spec.topologySpreadConstraints[1].topologyKey: topology key "topology.kubernetes.io/zone" is supported by Kubernetes, not by Shoal yet; Shoal supports kubernetes.io/hostname only (each node its own domain)`,
			`a.yaml:8: spec.topologySpreadConstraints[2]: duplicate of spec.topologySpreadConstraints[0]: one constraint per topologyKey and whenUnsatisfiable (kubernetes.io/hostname, DoNotSchedule); merge them`,
			`a.yaml:9: spec.topologySpreadConstraints[3].nodeTaintsPolicy: "Always" is not one of Honor, Ignore`,
			`a.yaml:9: spec.topologySpreadConstraints[3].whenUnsatisfiable: "Maybe" is not one of DoNotSchedule, ScheduleAnyway`,
			`a.yaml:13: spec.topologySpreadConstraints[4].minDomains: may only be set when whenUnsatisfiable is DoNotSchedule`,
			`a.yaml:13: spec.topologySpreadConstraints[4].minDomains: must be greater than zero, is 0`,
			`a.yaml:14: spec.topologySpreadConstraints[4].matchLabelKeys[0]: "app" is also in labelSelector; a key may be in one of them`,
			`a.yaml:16: spec.topologySpreadConstraints[5].matchLabelKeys: may only be set together with labelSelector`,
			`a.yaml:16: spec.topologySpreadConstraints[5].topologyKey: required; Shoal supports kubernetes.io/hostname (each node its own domain)`,
		}},
		{"lifecycle hooks", `terminationGracePeriodSeconds: 10
containers:
- name: c
  image: x
  ports: [{name: http, containerPort: 80}]
  lifecycle:
    postStart:
      tcpSocket: {port: 80}
    preStop:
      sleep: {seconds: 20}
- name: d
  image: x
  lifecycle:
    postStart: {}
    preStop:
      exec: {command: [sh]}
      httpGet: {port: http}
- name: e
  image: x
  lifecycle:
    postStart: {exec: {}}
    preStop: {sleep: {seconds: -1}}
`, []string{
			`a.yaml:12: spec.containers[0].lifecycle.postStart.tcpSocket: is deprecated as a hook: Kubernetes accepts it but never runs it, so Shoal refuses it; use exec or httpGet`,
			`a.yaml:14: spec.containers[0].lifecycle.preStop.sleep.seconds: must be at most terminationGracePeriodSeconds (10), is 20: the container is killed when the grace period ends; sleep less or raise terminationGracePeriodSeconds`,
			`a.yaml:18: spec.containers[1].lifecycle.postStart: needs a handler: one of exec, httpGet, sleep`,
			`a.yaml:19: spec.containers[1].lifecycle.preStop: has 2 handlers; use exactly one of exec, httpGet, sleep`,
			`a.yaml:21: spec.containers[1].lifecycle.preStop.httpGet.port: container "d" has no port named "http"; name it under ports or use a number`,
			`a.yaml:25: spec.containers[2].lifecycle.postStart.exec.command: required; give the command to run`,
			`a.yaml:26: spec.containers[2].lifecycle.preStop.sleep.seconds: must be 0 or more, is -1`,
		}},
		{"sidecars and container restart policy", `initContainers:
- name: sidecar
  image: x
  restartPolicy: Always
  readinessProbe: {exec: {command: ["true"]}}
  lifecycle: {preStop: {exec: {command: [sh]}}}
- name: init
  image: x
  restartPolicy: OnFailure
- name: setup
  image: x
  livenessProbe: {exec: {command: ["true"]}}
  lifecycle: {postStart: {exec: {command: [sh]}}}
containers:
- name: c
  image: x
  restartPolicy: Always
`, []string{
			`a.yaml:13: spec.initContainers[1].restartPolicy: "OnFailure" is not supported; the only value is Always (a sidecar, which runs beside the app containers)`,
			`a.yaml:16: spec.initContainers[2].livenessProbe: may not be set on an init container unless it is a sidecar (restartPolicy: Always)`,
			`a.yaml:17: spec.initContainers[2].lifecycle: may not be set on an init container unless it is a sidecar (restartPolicy: Always)`,
			`a.yaml:21: spec.containers[0].restartPolicy: may not be set on an app container; only an init container can be a sidecar (restartPolicy: Always): move the container under initContainers or remove restartPolicy`,
		}},
		{"termination message", `containers:
- name: c
  image: x
  terminationMessagePath: dev/log
  terminationMessagePolicy: Always
- name: d
  image: x
  terminationMessagePath: /` + strings.Repeat("a", 4096) + `
`, []string{
			`a.yaml:8: spec.containers[0].terminationMessagePath: must be an absolute path, such as /dev/termination-log, is "dev/log"`,
			`a.yaml:9: spec.containers[0].terminationMessagePolicy: "Always" is not one of File, FallbackToLogsOnError`,
			`a.yaml:12: spec.containers[1].terminationMessagePath: must be at most 4096 characters, is 4097`,
		}},
		{"host ports", `containers:
- name: c
  image: x
  ports:
  - {containerPort: 80, hostPort: 70000}
  - {containerPort: 81, hostPort: 8080, hostIP: 10.0.0.256}
  - {containerPort: 82, hostPort: 8081}
- name: d
  image: x
  ports:
  - {containerPort: 83, hostPort: 8081}
  - {containerPort: 84, hostPort: 8081, protocol: UDP}
  - {containerPort: 85, hostPort: 8081, hostIP: 127.0.0.1}
  - {containerPort: 86, hostPort: -1}
`, []string{
			`a.yaml:9: spec.containers[0].ports[0].hostPort: must be between 1 and 65535, or 0 (no host port), is 70000`,
			`a.yaml:10: spec.containers[0].ports[1].hostIP: "10.0.0.256" is not an IPv4 or IPv6 address`,
			`a.yaml:15: spec.containers[1].ports[0].hostPort: host port 8081/TCP is already taken by containers[0].ports[2] of this pod; give each its own host port`,
			`a.yaml:18: spec.containers[1].ports[3].hostPort: must be between 1 and 65535, or 0 (no host port), is -1`,
		}},
		{"host ports of init containers", `initContainers:
- {name: i1, image: x, ports: [{containerPort: 1, hostPort: 9000}]}
- {name: i2, image: x, ports: [{containerPort: 1, hostPort: 9000}, {containerPort: 2, hostPort: 9000, hostIP: "::1"}, {containerPort: 3, hostPort: 9000}]}
containers: [{name: c, image: x, ports: [{containerPort: 1, hostPort: 9000}]}]
`, []string{
			`a.yaml:7: spec.initContainers[1].ports[2].hostPort: host port 9000/TCP is already taken by initContainers[1].ports[0] of this pod; give each its own host port`,
		}},
		{"grpc probes", `containers:
- name: c
  image: x
  livenessProbe: {grpc: {port: 0}}
  readinessProbe: {grpc: {port: 9090, service: health}}
  startupProbe: {grpc: {port: 9090}, exec: {command: [x]}}
`, []string{
			`a.yaml:8: spec.containers[0].livenessProbe.grpc.port: must be between 1 and 65535, is 0`,
			`a.yaml:10: spec.containers[0].startupProbe: has 2 handlers; use exactly one of exec, httpGet, tcpSocket, grpc`,
		}},
		{"resource field refs", `containers:
- name: c
  image: x
  env:
  - {name: A, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1Mi}}}
  - {name: B, valueFrom: {resourceFieldRef: {resource: limits.gpu}}}
  - {name: C, valueFrom: {resourceFieldRef: {containerName: nope, resource: requests.cpu, divisor: 1m}}}
  - {name: D, valueFrom: {resourceFieldRef: {containerName: c, resource: requests.ephemeral-storage, divisor: 1500}}}
  - {name: E, valueFrom: {resourceFieldRef: {resource: ""}}}
  - {name: F, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1m}}}
`, []string{
			`a.yaml:9: spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: 1Mi is not a divisor for limits.cpu; use one of 1m, 1`,
			`a.yaml:10: spec.containers[0].env[1].valueFrom.resourceFieldRef.resource: "limits.gpu" is not supported; use one of limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage`,
			`a.yaml:11: spec.containers[0].env[2].valueFrom.resourceFieldRef.containerName: this pod has no container named "nope"; its containers: c`,
			`a.yaml:12: spec.containers[0].env[3].valueFrom.resourceFieldRef.divisor: 1500 is not a divisor for requests.ephemeral-storage; use one of 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei`,
			`a.yaml:13: spec.containers[0].env[4].valueFrom.resourceFieldRef.resource: required; one of limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage`,
			`a.yaml:14: spec.containers[0].env[5].valueFrom.resourceFieldRef.divisor: 1m is not a divisor for limits.memory; use one of 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei`,
		}},
		{"field refs in env", `containers:
- name: c
  image: x
  env:
  - {name: A, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}
  - {name: B, valueFrom: {fieldRef: {fieldPath: "spec.nodeName['x']"}}}
  - {name: C, valueFrom: {fieldRef: {fieldPath: "metadata.labels['-x']"}}}
  - {name: D, valueFrom: {fieldRef: {apiVersion: v2, fieldPath: status.hostIPs}}}
  - {name: E, valueFrom: {fieldRef: {fieldPath: ""}}}
  - {name: F, valueFrom: {fieldRef: {fieldPath: metadata.name}, secretKeyRef: {name: s, key: k}}}
`, []string{
			`a.yaml:9: spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: "metadata.labels" is not supported here; use one of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs, metadata.labels['KEY'], metadata.annotations['KEY']`,
			`a.yaml:10: spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: spec.nodeName takes no ['KEY']; only metadata.labels and metadata.annotations do`,
			`a.yaml:11: spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: label key "-x": must consist of letters, digits, '-', '_' or '.', start and end with a letter or digit, with an optional DNS prefix (such as "example.com/MyName")`,
			`a.yaml:12: spec.containers[0].env[3].valueFrom.fieldRef.apiVersion: must be v1, is "v2"`,
			`a.yaml:13: spec.containers[0].env[4].valueFrom.fieldRef.fieldPath: required; one of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs, metadata.labels['KEY'], metadata.annotations['KEY']`,
			`a.yaml:14: spec.containers[0].env[5].valueFrom: needs exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef`,
		}},
		{"downward API volume", `volumes:
- name: info
  downwardAPI:
    defaultMode: 1000
    items:
    - {path: labels, fieldRef: {fieldPath: metadata.labels}}
    - {path: labels, fieldRef: {fieldPath: metadata.name}}
    - {path: /abs, fieldRef: {fieldPath: metadata.name}}
    - {path: ..data, fieldRef: {fieldPath: metadata.name}}
    - {path: ip, fieldRef: {fieldPath: status.podIP}}
    - {path: mem, resourceFieldRef: {resource: limits.memory}}
    - {path: both, fieldRef: {fieldPath: metadata.uid}, resourceFieldRef: {containerName: c, resource: limits.cpu}}
    - {path: none}
    - {path: a/../../b, fieldRef: {fieldPath: metadata.name}, mode: 512}
containers: [{name: c, image: x}]
`, []string{
			`a.yaml:8: spec.volumes[0].downwardAPI.defaultMode: must be a file mode between 0 and 0777 (octal) or 511 (decimal), is 1000`,
			`a.yaml:11: spec.volumes[0].downwardAPI.items[1].path: duplicate path "labels"`,
			`a.yaml:12: spec.volumes[0].downwardAPI.items[2].path: must be a relative path, is "/abs"`,
			`a.yaml:13: spec.volumes[0].downwardAPI.items[3].path: must not start with '..', is "..data"`,
			`a.yaml:14: spec.volumes[0].downwardAPI.items[4].fieldRef.fieldPath: "status.podIP" is not supported here; use one of metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, metadata.labels['KEY'], metadata.annotations['KEY']`,
			`a.yaml:15: spec.volumes[0].downwardAPI.items[5].resourceFieldRef.containerName: required in a downwardAPI volume; name the container whose resource to expose`,
			`a.yaml:16: spec.volumes[0].downwardAPI.items[6]: has both fieldRef and resourceFieldRef; a file shows one of them`,
			`a.yaml:17: spec.volumes[0].downwardAPI.items[7]: needs fieldRef or resourceFieldRef: what the file shows`,
			`a.yaml:18: spec.volumes[0].downwardAPI.items[8].mode: must be a file mode between 0 and 0777 (octal) or 511 (decimal), is 512`,
			`a.yaml:18: spec.volumes[0].downwardAPI.items[8].path: must not contain '..', is "a/../../b"`,
		}},
		{"ephemeral storage", `containers:
- name: c
  image: x
  resources:
    limits: {ephemeral-storage: 1Gi}
    requests: {ephemeral-storage: 2Gi, cpu: 100m, hugepages-2Mi: 2Mi}
`, []string{
			`a.yaml:10: spec.containers[0].resources.requests[ephemeral-storage]: request 2Gi is more than the limit 1Gi; a request must be at most its limit`,
			`a.yaml:10: spec.containers[0].resources.requests[hugepages-2Mi]: resource "hugepages-2Mi" is supported by Kubernetes, not by Shoal yet; Shoal supports cpu, memory and ephemeral-storage`,
		}},
		{"empty dir size limit", `volumes: [{name: a, emptyDir: {sizeLimit: -1Gi}}]
containers: [{name: c, image: x}]
`, []string{`a.yaml:5: spec.volumes[0].emptyDir.sizeLimit: must not be negative`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, podDoc(tt.spec), tt.want)
		})
	}
}
