package manifests

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/manifest-support.md from the code")

const supportDoc = "../docs/manifest-support.md"

const supportIntro = `# Manifest support

Shoal reads the Kubernetes manifests you already have. This page lists, per kind, every field and whether
Shoal supports it. It is generated from the code (` + "`go test ./manifests -run TestSupportDocMatchesCode -update`" + `)
and a test checks that every field marked ` + "`yes`" + ` decodes and every field marked ` + "`no`" + ` is refused. Another
(` + "`TestEverySupportedPodFieldRuns`" + ` in runtime/linux) runs real pods that together set every Pod field marked ` + "`yes`" + `:
whatever validation accepts, a node runs.

- **yes**: decoded and validated as Kubernetes validates it, with Kubernetes' defaults.
- **no**: Kubernetes has the field, Shoal does not yet. A manifest that sets it is refused with
  ` + "`<file>:<line>: <field>: supported by Kubernetes, not by Shoal yet`" + `.
- **no; accepts V**: as above, except that the value V — Kubernetes' own default, as printed by
  ` + "`kubectl get -o yaml`" + ` — is accepted and ignored, so pasted output loads.
- **no: refused when set**: Shoal models the field but refuses any value (see the table of refused values below).
- Fields that Kubernetes does not have at all are refused as ` + "`unknown field \"x\"`" + `, with a suggestion when
  the name is close to a known one.
- ` + "`status`" + ` is accepted at the top level of every kind and dropped: status is written by Shoal, never read from Git.
- ` + "`metadata.creationTimestamp: null`" + ` (as written by ` + "`kubectl create --dry-run -o yaml`" + `) is accepted and ignored.

Supported kinds: ClusterRole, ClusterRoleBinding, Role and RoleBinding (rbac.authorization.k8s.io/v1), ConfigMap (v1),
CronJob and Job (batch/v1), DaemonSet, Deployment and StatefulSet (apps/v1), HorizontalPodAutoscaler (autoscaling/v2), Namespace (v1), PersistentVolumeClaim (v1), Pod (v1), PodDisruptionBudget (policy/v1, which drains honour), StorageClass (storage.k8s.io/v1), Secret (v1),
Service (v1), ServiceAccount (v1). Any other kind is
refused: ` + "`kind \"Ingress\" (networking.k8s.io/v1) is not supported by Shoal; supported kinds: ...`" + `. NetworkPolicy is refused
with a reason of its own: honouring it would change which traffic reaches the pods, and Shoal does not enforce network
policies yet. A Helm chart is not a manifest: a template (a file with Helm's ` + "`{{ .Values... }}`" + ` actions), a
` + "`Chart.yaml`" + ` or a chart's ` + "`values.yaml`" + ` is refused with ` + "`looks like a Helm template: render it with `helm template` and commit the output`" + `.

ServiceAccounts: a pod's ` + "`serviceAccountName`" + ` must be ` + "`default`" + ` (every namespace has it) or a ServiceAccount of the
pod's namespace in the same commit. Shoal has no Kubernetes API, so it mounts no ServiceAccount token into pods:
` + "`automountServiceAccountToken: true`" + ` loads with a warning, and the legacy ServiceAccount ` + "`secrets`" + ` list is refused.
The RBAC kinds (Role, ClusterRole, RoleBinding, ClusterRoleBinding) are decoded and checked, and have no effect: they
only configure access to the Kubernetes API. ` + "`shoal validate`" + ` prints each as
` + "`<file>:<line>: warning: Role \"x\" has no effect in Shoal: ...`" + ` and still succeeds; the master keeps the
warnings with the commit, and ` + "`shoal status`" + ` and ` + "`shoal history`" + ` show them.

Validation follows Kubernetes' rules for the supported fields, so a field marked yes may still be refused in some
places, as Kubernetes refuses it: probes and lifecycle hooks on init containers other than sidecars
(` + "`restartPolicy: Always`" + `), a container ` + "`restartPolicy`" + ` on app containers, restartPolicy other than Always in a
Deployment's pods, restartPolicy other than OnFailure or Never in a Job's, restartPolicy other than Always in a DaemonSet's, nodePort outside NodePort and LoadBalancer Services, a preStop ` + "`sleep`" + ` longer than terminationGracePeriodSeconds.

Jobs run as Kubernetes' Job controller runs them: up to ` + "`parallelism`" + ` pods at a time until ` + "`completions`" + ` pods
succeeded (without ` + "`completions`" + `, a work queue: done once a pod succeeded and none runs), one pod per index for
` + "`completionMode: Indexed`" + ` (` + "`JOB_COMPLETION_INDEX`" + ` in every container, the index in the pod's
` + "`batch.kubernetes.io/job-completion-index`" + ` annotation and label, hostname ` + "`<job>-<index>`" + `), a failed pod replaced after
10 s, doubling per failure up to 6 minutes, and the Job Failed once its failures (with restartPolicy OnFailure, its
containers' restarts) pass ` + "`backoffLimit`" + `, or ` + "`activeDeadlineSeconds`" + ` after it started, or when a
` + "`podFailurePolicy`" + ` rule says FailJob. A pod whose node is lost, drained or tainted NoExecute fails with
the ` + "`DisruptionTarget`" + ` condition, which an ` + "`onPodConditions`" + ` rule may Ignore. Pods are named ` + "`<job>-<suffix>`" + `
(` + "`<job>-<index>-<suffix>`" + `) and labelled ` + "`job-name`" + `, ` + "`batch.kubernetes.io/job-name`" + `, ` + "`controller-uid`" + ` and
` + "`batch.kubernetes.io/controller-uid`" + `. ` + "`suspend: true`" + ` stops the running pods without counting them as failed; resuming restarts
the deadline. Status, conditions (SuccessCriteriaMet and Complete, FailureTarget and Failed, Suspended) and events are
Kubernetes'. A Job in git is one run: changing its template, ` + "`completions`" + `, ` + "`completionMode`" + ` or
` + "`podFailurePolicy`" + ` (which Kubernetes does not let change) starts a new run, deleting the old run's pods, as Flux's
forced apply recreates the Job; changing ` + "`parallelism`" + `, ` + "`suspend`" + `, ` + "`backoffLimit`" + `, ` + "`activeDeadlineSeconds`" + ` or
` + "`ttlSecondsAfterFinished`" + ` applies to the run under way. To run an unchanged Job again, rename it or change an
annotation of its template. ` + "`ttlSecondsAfterFinished`" + ` deletes a finished Job's pods; where Kubernetes then deletes the
Job, in Shoal it stays in git and in ` + "`shoal get jobs`" + ` with its status and does not run again. A commit converges once
its Jobs are Complete (a Failed Job keeps it from converging). A master that takes over counts the same pods: a Job's
outcome is recorded before any of its ended pods is deleted, so no pod is counted twice and no completion is lost.

CronJobs make a Job at each time of ` + "`schedule`" + ` (five fields, or ` + "`@hourly`" + `-style descriptors, parsed by
robfig/cron as Kubernetes parses them) in ` + "`timeZone`" + ` (an IANA name; the time zone database is built into Shoal;
without it the daemon's local time zone), named ` + "`<cronjob>-<minutes since the epoch>`" + `, so one schedule time never
gets two Jobs, across master failovers too. After downtime only the most recent missed time runs, and only within
` + "`startingDeadlineSeconds`" + ` when set; a CronJob runs no time from before it was first applied. concurrencyPolicy Allow,
Forbid (the time stays due until the running Job ends, within the deadline) and Replace; ` + "`suspend`" + `;
` + "`successfulJobsHistoryLimit`" + ` and ` + "`failedJobsHistoryLimit`" + ` (3 and 1) keep finished Jobs and their pods. A Job keeps the
template it was made from. ` + "`shoal get jobs`" + ` lists the CronJobs' Jobs with git's.

DaemonSets run one pod on every node whose labels match the pod's ` + "`nodeSelector`" + ` and required node affinity and
whose NoSchedule and NoExecute taints the pod tolerates, including nodes that join later; a pod leaves a node that
stops matching. As Kubernetes, Shoal binds each pod to its node by node affinity (` + "`matchFields`" + ` on ` + "`metadata.name`" + `),
so the scheduler still checks its resources and host ports, and adds the tolerations Kubernetes adds (not-ready and
unreachable NoExecute; disk-, memory- and pid-pressure and unschedulable NoSchedule): a DaemonSet's pod stays on a node
that stops reporting, runs on a cordoned node and stays on a drained one, as ` + "`kubectl drain --ignore-daemonsets`" + `
leaves it; a node removed from the cluster loses it. RollingUpdate replaces the pods node by node within
` + "`maxUnavailable`" + ` (default 1) or, with ` + "`maxSurge`" + `, starts the new pod beside the old one and removes the old once the new
is available (` + "`minReadySeconds`" + `); OnDelete replaces a pod only once it is deleted (` + "`shoal delete pod`" + `, a failure, a drain). Pods are named ` + "`<daemonset>-<suffix>`" + ` and
labelled ` + "`controller-revision-hash`" + `. ` + "`revisionHistoryLimit`" + ` is accepted; Shoal keeps no old revisions.

PersistentVolumeClaims: Shoal provisions every claim itself, as k3s' local-path provisioner does: storage class
` + "`local-path`" + ` (the default), a directory under ` + "`<data dir>/volumes`" + ` on one node. A claim waits
for its first pod (WaitForFirstConsumer), is bound to the node that pod is placed on, and every later pod that uses it
goes there ("volume node affinity conflict" while that node cannot take it). ReadWriteOnce and ReadWriteOncePod; ReadWriteMany,
ReadOnlyMany and ` + "`volumeMode: Block`" + ` are refused. The requested storage counts against the node's ephemeral storage. A claim's
spec is fixed when it is made: a change in git applies to a claim made after it. A claim removed from git stays while pods use
it (no new pod may), then its volume is deleted on its node, or kept with the annotation ` + "`shoal.dev/reclaim-policy: Retain`" + `.
A node removed from the cluster (` + "`shoal node remove`" + `) takes its volumes with it: their claims are provisioned again, empty,
with a VolumeLost event. Every other class is provisioned the same way, with a warning: a StorageClass of the commit
gives its claims its ` + "`reclaimPolicy`" + ` (its provisioner and parameters are not used), and a class that is not in the
commit (such as ` + "`standard`" + `) gets local-path; ` + "`storageClassName: \"\"`" + ` (a PersistentVolume made beforehand) is refused.

StatefulSets: pods named ` + "`<set>-<ordinal>`" + ` from ` + "`ordinals.start`" + ` (default 0), with hostname the pod's name and subdomain
` + "`serviceName`" + `, so that a headless Service of that name resolves ` + "`<pod>.<service>.<namespace>.svc.cluster.local`" + `. Each
` + "`volumeClaimTemplates`" + ` entry makes one claim per ordinal, ` + "`<template>-<set>-<ordinal>`" + `, mounted as the volume named after the
template; a replaced pod keeps its name, its claims and so its node. A pod is made again only once the pod of its name is
gone: a pod on a lost node stays there, and is replaced only when the node comes back or is removed, so no ordinal ever runs
twice. OrderedReady (the default) makes pods in ordinal order, each once the one before is Running and Ready (and available,
` + "`minReadySeconds`" + `), and removes them from the highest ordinal, one at a time; Parallel makes and removes them all at once.
RollingUpdate replaces pods from the highest ordinal down to ` + "`partition`" + `, one at a time once all are Running and Ready;
pods below the partition keep, and are made again from, the current revision. OnDelete makes a pod of the new template only
once the old one is deleted. ` + "`persistentVolumeClaimRetentionPolicy`" + ` (default Retain for both): whenScaled Delete releases the
claims of removed ordinals, whenDeleted Delete those of a StatefulSet that left git, once their pods are gone; a retained claim
stays for the set to use again. ` + "`rollingUpdate.maxUnavailable`" + ` is refused (pods are updated one at a time).

HorizontalPodAutoscalers (autoscaling/v2) scale a Deployment or StatefulSet on the cpu and memory of its pods
(` + "`type: Resource`" + `, targets Utilization of the pods' requests or AverageValue), measured by each node from the pods' cgroups
every 15 s (no metrics-server; ` + "`shoal top pods`" + ` shows the same figures). The replicas follow Kubernetes' algorithm: a
10% tolerance, pods without a sample counted as idle when scaling up and as at the target when scaling down, pods not yet
Ready left out of cpu, the largest proposal of several metrics, the stabilization windows (0 s up, 300 s down by default)
and the ` + "`behavior`" + ` policies (Pods and Percent per period, selectPolicy Max, Min, Disabled), within minReplicas and
maxReplicas. Its status has Kubernetes' conditions: ScalingActive is False with the reason (FailedGetResourceMetric, such
as a container without a cpu request) when it cannot compute, and the replicas then stay. The replicas it sets are the
autoscaler's, not git's: the target's ` + "`replicas`" + ` counts only until the autoscaler has run, and again if it leaves git. As
with Flux and Argo CD, leave ` + "`replicas`" + ` out of an autoscaled workload, so that a commit never fights the autoscaler.
Pods, Object, External and ContainerResource metrics are not supported yet.

Argo CD and Helm hooks: an object annotated ` + "`argocd.argoproj.io/hook`" + ` PreSync, Sync or PostSync, or ` + "`helm.sh/hook`" + `
pre-install, post-install, pre-upgrade or post-upgrade, is applied with the rest of the commit, with a warning: Shoal
has no sync phases, so the hook runs neither before nor after the other objects, and a hook Job runs once per change
of its template, not on every sync; the hooks' delete policies have no effect. A Job may be named by
` + "`metadata.generateName`" + ` (as hook Jobs often are): its name is the prefix and five characters of a hash of the Job, the
same on every pass, another once the Job changes; every other kind needs ` + "`metadata.name`" + `. Other hooks (SyncFail, Skip, Helm's test,
delete and rollback hooks) run on events Shoal does not have and are refused.

Services of ` + "`type: LoadBalancer`" + ` are served by Shoal's own load balancer, as k3s's ServiceLB serves them; there is
no cloud load balancer. A LoadBalancer Service is a NodePort Service (node ports are allocated for its ports, ` + "`nodePort`" + `
may be set) whose ports are also opened on the address of every node that serves node ports (` + "`--node-interface`" + `):
` + "`<node address>:<port>`" + ` reaches its ready pods. Its ` + "`status.loadBalancer.ingress`" + ` lists those nodes' addresses, and
` + "`shoal get services`" + ` shows them as EXTERNAL-IP. Since every such port is opened on every node, two LoadBalancer
Services with the same port and protocol cannot both be served: as with ServiceLB, the one that had the port keeps it (else
the first by namespace and name) and the other stays pending, with no ingress (` + "`<pending>`" + `), and ` + "`shoal validate`" + `
warns of it; a commit is refused when a LoadBalancer port is the explicit ` + "`nodePort`" + ` of a Service or a container's
` + "`hostPort`" + `; a LoadBalancer Service cannot be headless. A node never gives up a port the
daemon itself listens on (the cluster endpoint, the store's client and peer ports, ` + "`--api-listen`" + `,
` + "`--webhook-listen`" + `): it leaves that port closed, logs a warning, and is not listed as an ingress of the Service.
` + "`externalTrafficPolicy: Local`" + ` (NodePort and LoadBalancer Services): what arrives at a node's node port or
LoadBalancer port goes only to the Service's ready pods on that node, with the client's address kept (no source NAT);
a node without such a pod drops new connections, and a LoadBalancer's ingress lists only the nodes that have one (as
ServiceLB does). ` + "`healthCheckNodePort`" + ` is not supported: there is no cloud load balancer to probe it.
` + "`allocateLoadBalancerNodePorts: true`" + ` (Kubernetes' default) is accepted; the other LoadBalancer fields
(` + "`loadBalancerClass`, `loadBalancerIP`, `loadBalancerSourceRanges`" + `) are not supported yet.

Values Shoal refuses although Kubernetes accepts them:

| Field | Refused values |
| --- | --- |
| ` + "`spec.type` (Service)" + ` | ` + "`ExternalName`" + ` |
| ` + "`protocol`" + ` (container and Service ports) | ` + "`SCTP`" + ` |
| ` + "`resources.limits`, `resources.requests`" + ` | every resource other than ` + "`cpu`, `memory` and `ephemeral-storage`" + ` |
| ` + "`env[].valueFrom.resourceFieldRef.resource`, downwardAPI `resourceFieldRef.resource`" + ` | hugepages (` + "`limits.hugepages-*`" + `) |
| ` + "`topologyKey`" + ` (pod affinity and anti-affinity, topology spread) | every key other than ` + "`kubernetes.io/hostname`" + ` |
| ` + "`namespaceSelector`, `matchLabelKeys`, `mismatchLabelKeys`" + ` of pod (anti-)affinity terms | any value |
| ` + "`lifecycle.postStart.tcpSocket`, `lifecycle.preStop.tcpSocket`" + ` | any value (Kubernetes accepts it and never runs it; use exec or httpGet) |
| ` + "`spec.clusterIPs`" + ` | more than one address (dual stack) |
| ` + "`matchExpressions[].values`" + ` of node affinity with Gt or Lt | a value that is not an integer (Kubernetes accepts it and matches no node) |
| ` + "`serviceAccount`" + ` | a value other than ` + "`serviceAccountName`" + ` when both are set (Kubernetes uses serviceAccountName) |

The downward API exposes, in environment variables (` + "`env[].valueFrom.fieldRef.fieldPath`" + `): ` + "`metadata.name`" + `,
` + "`metadata.namespace`, `metadata.uid`, `metadata.labels['KEY']`, `metadata.annotations['KEY']`, `spec.nodeName`" + `,
` + "`spec.serviceAccountName`, `status.hostIP`, `status.hostIPs`, `status.podIP`, `status.podIPs`" + `; in downwardAPI volumes:
` + "`metadata.name`, `metadata.namespace`, `metadata.uid`, `metadata.labels`, `metadata.annotations`" + ` and the
` + "`['KEY']`" + ` forms; and, through ` + "`resourceFieldRef`" + `, ` + "`limits.cpu`, `limits.memory`, `limits.ephemeral-storage`" + `,
` + "`requests.cpu`, `requests.memory`, `requests.ephemeral-storage`" + ` of a container of the pod (divisor 1m or 1 for cpu;
1, 1k ... 1E or 1Ki ... 1Ei for the others).

Defaults are applied as Kubernetes applies them: namespace ` + "`default`" + `, replicas 1, a Job's completions and
parallelism 1 (parallelism alone leaves completions unset), backoffLimit 6, completionMode NonIndexed, suspend false,
podReplacementPolicy TerminatingOrFailed (Failed with a podFailurePolicy), onPodConditions status True, a CronJob's
concurrencyPolicy Allow and history limits 3 and 1, a DaemonSet's RollingUpdate with maxUnavailable 1 and maxSurge 0, RollingUpdate with maxSurge and
maxUnavailable 25%, revisionHistoryLimit 10, progressDeadlineSeconds 600, restartPolicy Always,
terminationGracePeriodSeconds 30, dnsPolicy ClusterFirst, serviceAccountName and serviceAccount copied to each other
and ` + "`default`" + ` when neither is set, terminationMessagePath ` + "`/dev/termination-log`" + `, terminationMessagePolicy File,
probe periodSeconds 10 / timeoutSeconds 1 / successThreshold 1 / failureThreshold 3, httpGet (probes and hooks) scheme
HTTP and path ` + "`/`" + `, port protocol TCP, fieldRef apiVersion v1, Service targetPort = port, sessionAffinity None
(ClientIP timeout 10800 s), Service type ClusterIP, imagePullPolicy Always for ` + "`:latest`" + ` or untagged images and
IfNotPresent otherwise (also for digests), configMap/secret/downwardAPI volume defaultMode 0644, hostPath type "",
Secret type Opaque, Secret ` + "`stringData`" + ` merged into ` + "`data`" + `, and the apiGroup of User and Group subjects. Shoal
also writes out what Kubernetes leaves unset and treats as a default: toleration operator Equal, topology spread
nodeAffinityPolicy Honor and nodeTaintsPolicy Ignore, resourceFieldRef divisor 1 (Kubernetes shows "0"). The namespace
of a ClusterRole or ClusterRoleBinding is dropped, as the API server drops it.
`

func generateSupportDoc() []byte {
	var b bytes.Buffer
	b.WriteString(supportIntro)
	names := SupportedKinds()
	for _, kind := range names {
		ki, _, _ := kindByName(kind)
		fmt.Fprintf(&b, "\n## %s (%s)\n\n| Field | Support |\n| --- | --- |\n", kind, ki.apiVersion)
		for _, r := range supportRows(reflect.TypeOf(ki.newObject()).Elem()) {
			fmt.Fprintf(&b, "| `%s` | %s |\n", r.path, r.support)
		}
	}
	return b.Bytes()
}

// minimalManifests are the smallest valid object of each kind, as generic
// values.
func minimalManifest(kind string) map[string]any {
	apiVersion, _ := APIVersionOf(kind)
	m := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": "x"}}
	container := func() []any { return []any{map[string]any{"name": "c", "image": "i"}} }
	switch kind {
	case "Pod":
		m["spec"] = map[string]any{"containers": container()}
	case "Deployment":
		m["spec"] = map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"a": "b"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"a": "b"}},
				"spec":     map[string]any{"containers": container()},
			},
		}
	case "Service":
		m["spec"] = map[string]any{"ports": []any{map[string]any{"port": 80}}}
	}
	return m
}

// sampleValue returns a value of Go type t as YAML/JSON would carry it.
func sampleValue(t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case typeQuantity:
		return "1"
	case typeIntOrString:
		return 1
	case typeBytes:
		return "eA=="
	case typeTime:
		return "2024-01-01T00:00:00Z"
	}
	switch t.Kind() {
	case reflect.String:
		return "x"
	case reflect.Bool:
		return true
	case reflect.Int, reflect.Int32, reflect.Int64:
		return 1
	case reflect.Slice:
		return []any{sampleValue(t.Elem())}
	case reflect.Map:
		k := "a"
		if t.Key() == reflect.TypeFor[ResourceName]() {
			k = "cpu"
		}
		return map[string]any{k: sampleValue(t.Elem())}
	}
	return map[string]any{}
}

// typeAt returns the Go type of the field at a doc path such as
// "spec.containers[].ports[].name".
func typeAt(t reflect.Type, path string) (reflect.Type, bool) {
	for _, seg := range strings.Split(path, ".") {
		list := strings.HasSuffix(seg, "[]")
		seg = strings.TrimSuffix(seg, "[]")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		f, ok := structInfoOf(t).byName[seg]
		if !ok {
			return nil, false
		}
		t = f.typ
		if list {
			t = t.Elem()
		}
	}
	return t, true
}

// setPath sets path in m (lists get or reuse element 0), leaving values the
// minimal manifest already has.
func setPath(m map[string]any, path string, val any) {
	segs := strings.Split(path, ".")
	cur := m
	for i, seg := range segs {
		list := strings.HasSuffix(seg, "[]")
		seg = strings.TrimSuffix(seg, "[]")
		if i == len(segs)-1 && !list {
			if _, ok := cur[seg]; !ok {
				cur[seg] = val
			}
			return
		}
		if list {
			l, _ := cur[seg].([]any)
			if len(l) == 0 {
				l = []any{map[string]any{}}
				cur[seg] = l
			}
			cur = l[0].(map[string]any)
			continue
		}
		next, ok := cur[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[seg] = next
		}
		cur = next
	}
}

// checkRefusedWhenSet sets the field at path in m and checks that
// validation refuses it.
func checkRefusedWhenSet(t *testing.T, m map[string]any, objType reflect.Type, path string) {
	t.Helper()
	ft, ok := typeAt(objType, path)
	if !ok {
		t.Fatalf("field %s is listed but the code has no such field", path)
	}
	if before, _, ok := strings.Cut(path, "initContainers[]."); ok {
		// Hooks are allowed on sidecars only.
		for f, val := range map[string]string{"name": "i", "image": "i", "restartPolicy": "Always"} {
			setPath(m, before+"initContainers[]."+f, val)
		}
	}
	setPath(m, path, sampleValue(ft))
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	_, errs := DecodeFile("m.yaml", data, LoadOptions{})
	for _, e := range errs {
		if strings.HasPrefix(path, strings.ReplaceAll(e.Field, "[0]", "[]")) &&
			(strings.Contains(e.Msg, "not by Shoal yet") || strings.Contains(e.Msg, "Shoal refuses it")) {
			return
		}
	}
	t.Errorf("%s: want a refusal of %s, got %v", data, path, errs)
}

func TestSupportDocMatchesCode(t *testing.T) {
	want := generateSupportDoc()
	if *update {
		if err := os.WriteFile(supportDoc, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := os.ReadFile(supportDoc)
	if err != nil {
		t.Fatalf("%v; run go test ./manifests -run TestSupportDocMatchesCode -update", err)
	}
	if !bytes.Equal(doc, want) {
		t.Errorf("%s is out of date; run go test ./manifests -run TestSupportDocMatchesCode -update", supportDoc)
	}
	// Check every row of the committed document against the decoder.
	kind := ""
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			kind, _, _ = strings.Cut(h, " ")
			continue
		}
		if kind == "" || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		path := strings.Trim(strings.TrimSpace(cells[1]), "`")
		support := strings.TrimSpace(cells[2])
		ki, _, ok := kindByName(kind)
		if !ok {
			t.Fatalf("unknown kind %q in %s", kind, supportDoc)
		}
		rows++
		t.Run(kind+"/"+path, func(t *testing.T) {
			m := minimalManifest(kind)
			objType := reflect.TypeOf(ki.newObject()).Elem()
			switch {
			case support == refusedSupport:
				checkRefusedWhenSet(t, m, objType, path)
				return
			case strings.HasPrefix(support, "yes"):
				ft, ok := typeAt(objType, path)
				if !ok {
					t.Fatalf("field %s is listed as supported but the code has no such field", path)
				}
				setPath(m, path, sampleValue(ft))
			case strings.HasPrefix(support, "no"):
				setPath(m, path, "shoal-sample")
			default:
				setPath(m, path, map[string]any{})
			}
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, errs := decodeFile("m.yaml", data, LoadOptions{}.limits())
			if strings.HasPrefix(support, "no") {
				if len(errs) != 1 || !strings.Contains(errs[0].Msg, "not by Shoal yet") {
					t.Errorf("%s: want one not-yet error, got %v", data, errs)
				}
				return
			}
			if errs != nil {
				t.Errorf("%s: %v", data, errs)
			}
		})
	}
	if rows < 100 {
		t.Errorf("only %d rows in %s", rows, supportDoc)
	}
}
