package manifests

import (
	"reflect"
	"slices"
	"strings"
	"sync"
)

// kindInfo describes one supported kind.
type kindInfo struct {
	kind       string
	apiVersion string
	namespaced bool
	newObject  func() Object
}

// kinds lists the supported kinds in the order objects are sorted (the order
// in which they are applied: namespaces first, workloads last).
var kinds = []kindInfo{
	{"Namespace", "v1", false, func() Object { return &Namespace{} }},
	{"ServiceAccount", "v1", true, func() Object { return &ServiceAccount{} }},
	{"ClusterRole", "rbac.authorization.k8s.io/v1", false, func() Object { return &ClusterRole{} }},
	{"ClusterRoleBinding", "rbac.authorization.k8s.io/v1", false, func() Object { return &ClusterRoleBinding{} }},
	{"Role", "rbac.authorization.k8s.io/v1", true, func() Object { return &Role{} }},
	{"RoleBinding", "rbac.authorization.k8s.io/v1", true, func() Object { return &RoleBinding{} }},
	{"ConfigMap", "v1", true, func() Object { return &ConfigMap{} }},
	{"Secret", "v1", true, func() Object { return &Secret{} }},
	{"Service", "v1", true, func() Object { return &Service{} }},
	{"Deployment", "apps/v1", true, func() Object { return &Deployment{} }},
	{"DaemonSet", "apps/v1", true, func() Object { return &DaemonSet{} }},
	{"StatefulSet", "apps/v1", true, func() Object { return &StatefulSet{} }},
	{"PodDisruptionBudget", "policy/v1", true, func() Object { return &PodDisruptionBudget{} }},
	{"HorizontalPodAutoscaler", "autoscaling/v2", true, func() Object { return &HorizontalPodAutoscaler{} }},
	{"CronJob", "batch/v1", true, func() Object { return &CronJob{} }},
	{"Job", "batch/v1", true, func() Object { return &Job{} }},
	{"StorageClass", "storage.k8s.io/v1", false, func() Object { return &StorageClass{} }},
	{"PersistentVolumeClaim", "v1", true, func() Object { return &PersistentVolumeClaim{} }},
	{"Pod", "v1", true, func() Object { return &Pod{} }},
}

func kindByName(kind string) (kindInfo, int, bool) {
	for i, k := range kinds {
		if k.kind == kind {
			return k, i, true
		}
	}
	return kindInfo{}, -1, false
}

// SupportedKinds returns the kinds Shoal accepts, sorted by name.
func SupportedKinds() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	slices.Sort(out)
	return out
}

// APIVersionOf returns the apiVersion Shoal expects for a supported kind.
func APIVersionOf(kind string) (string, bool) {
	k, _, ok := kindByName(kind)
	return k.apiVersion, ok
}

// unsupported is a field that Kubernetes has and Shoal does not. When
// tolerated is non-empty, the listed values (Kubernetes' defaults, as
// printed by kubectl get -o yaml) are accepted and ignored. why, when set,
// is added to the refusal to say why and what to do instead.
type unsupported struct {
	tolerated []string
	why       string
}

// message is the refusal of a manifest that sets the field.
func (u unsupported) message() string {
	if u.why == "" {
		return notYet
	}
	return notYet + ": " + u.why
}

// notYetFields lists, per Go type, the Kubernetes fields Shoal refuses with
// "supported by Kubernetes, not by Shoal yet". Fields that are neither
// modelled nor listed here are unknown fields.
var notYetFields = map[reflect.Type]map[string]unsupported{
	reflect.TypeFor[ObjectMeta](): {
		"uid":                        {},
		"resourceVersion":            {},
		"generation":                 {},
		"selfLink":                   {},
		"creationTimestamp":          {tolerated: []string{"null"}},
		"deletionTimestamp":          {},
		"deletionGracePeriodSeconds": {},
		"ownerReferences":            {},
		"finalizers":                 {},
		"managedFields":              {},
	},
	reflect.TypeFor[PodSpec](): {
		"activeDeadlineSeconds": {},
		"enableServiceLinks":    {tolerated: []string{"true"}},
		"ephemeralContainers":   {},
		"hostIPC":               {tolerated: []string{"false"}},
		"hostNetwork":           {tolerated: []string{"false"}},
		"hostPID":               {tolerated: []string{"false"}},
		"hostUsers":             {},
		"nodeName":              {},
		"os":                    {},
		"overhead":              {},
		"preemptionPolicy":      {tolerated: []string{"PreemptLowerPriority"}},
		"priority":              {tolerated: []string{"0"}},
		"priorityClassName":     {},
		"readinessGates":        {},
		"resourceClaims":        {},
		"resources":             {},
		"runtimeClassName":      {},
		"schedulerName":         {tolerated: []string{"default-scheduler"}},
		"schedulingGates":       {},
		"setHostnameAsFQDN":     {},
		"shareProcessNamespace": {tolerated: []string{"false"}},
		"hostnameOverride":      {},
	},
	reflect.TypeFor[Container](): {
		"resizePolicy":       {},
		"restartPolicyRules": {},
		"stdin":              {tolerated: []string{"false"}},
		"stdinOnce":          {tolerated: []string{"false"}},
		"tty":                {tolerated: []string{"false"}},
		"volumeDevices":      {},
	},
	reflect.TypeFor[ContainerPort](): {},
	reflect.TypeFor[JobSpec](): {
		"backoffLimitPerIndex": {},
		"managedBy":            {tolerated: []string{"kubernetes.io/job-controller"}},
		"maxFailedIndexes":     {},
		"successPolicy":        {},
	},
	reflect.TypeFor[RollingUpdateStatefulSetStrategy](): {
		"maxUnavailable": {why: "the pods are updated one at a time, highest ordinal first"},
	},
	reflect.TypeFor[MetricSpec](): {
		"pods":              {why: "Shoal measures the pods' cpu and memory: use type: Resource"},
		"object":            {why: "Shoal measures the pods' cpu and memory: use type: Resource"},
		"external":          {why: "Shoal measures the pods' cpu and memory: use type: Resource"},
		"containerResource": {why: "Shoal measures the pods' cpu and memory: use type: Resource"},
	},
	reflect.TypeFor[HPAScalingRules](): {
		"tolerance": {why: "the tolerance is Kubernetes' default, 10%"},
	},
	reflect.TypeFor[EnvVarSource](): {
		"fileKeyRef": {},
	},
	reflect.TypeFor[ResourceRequirements](): {
		"claims": {},
	},
	reflect.TypeFor[VolumeMount](): {
		"mountPropagation":  {tolerated: []string{"None"}},
		"recursiveReadOnly": {},
		"subPathExpr":       {},
	},
	reflect.TypeFor[ProbeHandler](): {},
	reflect.TypeFor[SecurityContext](): {
		"appArmorProfile": {},
		"procMount":       {tolerated: []string{"Default"}},
		"seLinuxOptions":  {},
		"windowsOptions":  {},
	},
	reflect.TypeFor[PodSecurityContext](): {
		"appArmorProfile":          {},
		"fsGroupChangePolicy":      {},
		"seLinuxChangePolicy":      {},
		"seLinuxOptions":           {},
		"supplementalGroupsPolicy": {},
		"sysctls":                  {},
		"windowsOptions":           {},
	},
	reflect.TypeFor[VolumeSource](): {
		"awsElasticBlockStore": {},
		"azureDisk":            {},
		"azureFile":            {},
		"cephfs":               {},
		"cinder":               {},
		"csi":                  {},
		"ephemeral":            {},
		"fc":                   {},
		"flexVolume":           {},
		"flocker":              {},
		"gcePersistentDisk":    {},
		"gitRepo":              {},
		"glusterfs":            {},
		"image":                {},
		"iscsi":                {},
		"nfs":                  {},
		"photonPersistentDisk": {},
		"portworxVolume":       {},
		"projected":            {},
		"quobyte":              {},
		"rbd":                  {},
		"scaleIO":              {},
		"storageos":            {},
		"vsphereVolume":        {},
	},
	reflect.TypeFor[PersistentVolumeClaimSpec](): {
		"dataSource":                {why: "a local volume starts empty; fill it from the pod (an init container)"},
		"dataSourceRef":             {why: "a local volume starts empty; fill it from the pod (an init container)"},
		"selector":                  {why: "Shoal provisions a volume for every claim; there are no PersistentVolumes to select"},
		"volumeAttributesClassName": {},
		"volumeName":                {why: "Shoal provisions a volume for every claim; there are no PersistentVolumes to name"},
	},
	reflect.TypeFor[StorageClass](): {
		"allowedTopologies": {why: "a local volume is on the node of its claim's first pod"},
	},
	reflect.TypeFor[ServiceSpec](): {
		"allocateLoadBalancerNodePorts": {tolerated: []string{"true"}},
		"externalIPs":                   {},
		"externalName":                  {},
		"healthCheckNodePort":           {},
		"internalTrafficPolicy":         {tolerated: []string{"Cluster"}},
		"ipFamilies":                    {tolerated: []string{"[IPv4]"}},
		"ipFamilyPolicy":                {tolerated: []string{"SingleStack"}},
		"loadBalancerClass":             {},
		"loadBalancerIP":                {},
		"loadBalancerSourceRanges":      {},
		"trafficDistribution":           {},
	},
	reflect.TypeFor[ServicePort](): {
		"appProtocol": {},
	},
	reflect.TypeFor[ConfigMap](): {
		"immutable": {},
	},
	reflect.TypeFor[Secret](): {
		"immutable": {},
	},
	reflect.TypeFor[Namespace](): {
		"spec": {tolerated: []string{"{}", "{finalizers:[kubernetes]}"}},
	},
	reflect.TypeFor[ServiceAccount](): {
		"secrets": {why: "it lists the account's API token Secrets, and Shoal has no Kubernetes API and mounts no " +
			"ServiceAccount token; remove it (Kubernetes 1.24 and later do not fill it either)"},
	},
}

// Kubernetes fields Shoal has no Go field for but which are only valid in
// object status: "status" at the top level of every kind is accepted and
// dropped.

// fieldInfo is one JSON field of a struct, with embedded inline structs
// flattened.
type fieldInfo struct {
	name  string
	index []int
	typ   reflect.Type
}

type structInfo struct {
	byName map[string]*fieldInfo
	fields []*fieldInfo // in declaration order
	names  []string     // sorted, for suggestions
}

var structInfos sync.Map // reflect.Type -> *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{byName: map[string]*fieldInfo{}}
	collectFields(t, nil, si)
	for _, f := range si.fields {
		si.names = append(si.names, f.name)
	}
	slices.Sort(si.names)
	v, _ := structInfos.LoadOrStore(t, si)
	return v.(*structInfo)
}

func collectFields(t reflect.Type, index []int, si *structInfo) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		idx := append(slices.Clone(index), i)
		if name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, idx, si)
			continue
		}
		if name == "" {
			name = f.Name
		}
		fi := &fieldInfo{name: name, index: idx, typ: f.Type}
		si.byName[name] = fi
		si.fields = append(si.fields, fi)
	}
}

// notYetOf returns the not-yet fields of a struct type, including those of
// its inline embedded structs.
func notYetOf(t reflect.Type) map[string]unsupported {
	return notYetFields[t]
}

// inlineTypes returns t and the types of its inline embedded structs, whose
// not-yet tables also apply to t's mapping.
var inlineCache sync.Map

func inlineTypes(t reflect.Type) []reflect.Type {
	if v, ok := inlineCache.Load(t); ok {
		return v.([]reflect.Type)
	}
	out := []reflect.Type{t}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, inlineTypes(f.Type)...)
		}
	}
	v, _ := inlineCache.LoadOrStore(t, out)
	return v.([]reflect.Type)
}

func lookupNotYet(t reflect.Type, key string) (unsupported, bool) {
	for _, it := range inlineTypes(t) {
		if u, ok := notYetOf(it)[key]; ok {
			return u, true
		}
	}
	return unsupported{}, false
}
