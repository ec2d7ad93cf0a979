package manifests

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Validate checks objects as the Kubernetes API server would for the fields
// Shoal supports, plus checks across objects: duplicate objects, Service
// target port names and the ServiceAccounts pods name. Objects should be
// defaulted first (SetDefaults). Errors of objects built in code carry no
// file or line.
func Validate(objs []Object) ErrorList {
	items := make([]located, len(objs))
	for i, o := range objs {
		items[i] = located{obj: o}
	}
	errs := append(validateEach(items), validateTree(items)...)
	errs.Sort()
	return errs
}

type validator struct {
	errs ErrorList
	src  *source
	// kind is the kind of the object being checked.
	kind string
}

func (v *validator) errf(field, format string, args ...any) {
	e := &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
	if v.src != nil {
		e.File = v.src.file
		e.Line = v.src.lineOf(field)
	}
	v.errs = append(v.errs, e)
}

// validateLocated checks the objects of one file (DecodeFile): each
// object, and across them what one file can hold. References to
// ServiceAccounts are left to the tree (validateTree), as the accounts are
// often in other files.
func validateLocated(items []located) ErrorList {
	return append(validateEach(items), validateAcross(items, false)...)
}

// validateEach checks each object on its own.
func validateEach(items []located) ErrorList {
	v := &validator{}
	for _, it := range items {
		v.src = it.src
		v.object(it.obj)
	}
	return v.errs
}

// validateTree checks what involves several objects of a whole tree:
// duplicates and references between objects.
func validateTree(items []located) ErrorList {
	return validateAcross(items, true)
}

// validateAcross checks what involves several objects; accounts also
// checks the ServiceAccounts that pods name.
func validateAcross(items []located, accounts bool) ErrorList {
	v := &validator{}
	first := make(map[ObjectKey]*source, len(items))
	for _, it := range items {
		v.src = it.src
		key := KeyOf(it.obj)
		if prev, dup := first[key]; dup && key.Name != "" {
			where := "earlier"
			if prev != nil && prev.file != "" {
				where = fmt.Sprintf("%s:%d", prev.file, prev.line)
			}
			v.errf("", "duplicate %s (first defined at %s); rename one of them or delete it", key, where)
			continue
		}
		first[key] = it.src
	}
	pods := podTemplates(items)
	v.crossObject(items, pods)
	if accounts {
		v.serviceAccountRefs(items, pods)
	}
	return v.errs
}

func (v *validator) object(obj Object) {
	v.kind = obj.GetKind()
	switch o := obj.(type) {
	case *Namespace:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Label, false)
	case *ConfigMap:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.configMap(o)
	case *Secret:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.secret(o)
	case *Service:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1035Label, true)
		v.service(o)
	case *Deployment:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.deployment(o)
	case *DaemonSet:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.daemonSet(o)
	case *StatefulSet:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.statefulSet(o)
	case *HorizontalPodAutoscaler:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.hpa(o)
	case *Job:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.job(o)
	case *CronJob:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.cronJob(o)
	case *Pod:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.podSpec(&o.Spec, "spec")
	case *PersistentVolumeClaim:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.persistentVolumeClaim(o)
	case *StorageClass:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, false)
		v.storageClass(o)
	case *PodDisruptionBudget:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.podDisruptionBudget(o)
	case *ServiceAccount:
		v.meta(&o.ObjectMeta, "metadata", validateDNS1123Subdomain, true)
		v.serviceAccount(o)
	case *Role:
		v.meta(&o.ObjectMeta, "metadata", validatePathSegmentName, true)
		v.policyRules(o.Rules, "rules", true)
	case *ClusterRole:
		v.meta(&o.ObjectMeta, "metadata", validatePathSegmentName, false)
		v.policyRules(o.Rules, "rules", false)
		v.aggregationRule(o.AggregationRule)
	case *RoleBinding:
		v.meta(&o.ObjectMeta, "metadata", validatePathSegmentName, true)
		v.roleBinding(o.Subjects, o.RoleRef, true)
	case *ClusterRoleBinding:
		v.meta(&o.ObjectMeta, "metadata", validatePathSegmentName, false)
		v.roleBinding(o.Subjects, o.RoleRef, false)
	default:
		v.errf("kind", "kind %q is not supported by Shoal; supported kinds: %s", obj.GetKind(), strings.Join(SupportedKinds(), ", "))
	}
}

func (v *validator) meta(m *ObjectMeta, p string, nameRule func(string) string, namespaced bool) {
	if m.GenerateName != "" && v.kind != "Job" {
		v.errf(p+".generateName", "supported by Kubernetes, not by Shoal yet on a %s: Shoal names Jobs from generateName (as Argo CD and Helm hooks use it) "+
			"and applies every other object by name; set metadata.name", v.kind)
	} else if m.GenerateName != "" && m.Name == "" {
		if msg := nameRule(m.GenerateName + "bbbbb"); msg != "" {
			v.errf(p+".generateName", "%s", msg)
		}
	}
	if m.Name == "" {
		v.errf(p+".name", "required; every object needs a name")
	} else if msg := nameRule(m.Name); msg != "" {
		v.errf(p+".name", "%s", msg)
	}
	if namespaced {
		if m.Namespace != "" {
			if msg := validateDNS1123Label(m.Namespace); msg != "" {
				v.errf(p+".namespace", "%s", msg)
			}
		}
	} else if m.Namespace != "" {
		v.errf(p+".namespace", "a %s is cluster-wide, not in a namespace; remove metadata.namespace", v.kind)
	}
	v.labels(m.Labels, p+".labels")
	v.annotations(m.Annotations, p+".annotations")
	v.hooks(m, p)
}

func (v *validator) labels(labels map[string]string, p string) {
	for _, k := range sortedKeys(labels) {
		if msg := validateQualifiedName(k); msg != "" {
			v.errf(p+"["+k+"]", "label key %q: %s", k, msg)
		}
		if msg := validateLabelValue(labels[k]); msg != "" {
			v.errf(p+"["+k+"]", "label value %q: %s", labels[k], msg)
		}
	}
}

func (v *validator) annotations(ann map[string]string, p string) {
	total := 0
	for _, k := range sortedKeys(ann) {
		if msg := validateQualifiedName(k); msg != "" {
			v.errf(p+"["+k+"]", "annotation key %q: %s", k, msg)
		}
		total += len(k) + len(ann[k])
	}
	if total > totalAnnotationMax {
		v.errf(p, "annotations are %d bytes in total, more than %d", total, totalAnnotationMax)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func idx(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

func (v *validator) configMap(c *ConfigMap) {
	size := 0
	for _, k := range sortedKeys(c.Data) {
		if msg := validateConfigKey(k); msg != "" {
			v.errf("data["+k+"]", "%s", msg)
		}
		if _, both := c.BinaryData[k]; both {
			v.errf("binaryData["+k+"]", "key %q is also in data; a key may be in data or binaryData, not both", k)
		}
		size += len(k) + len(c.Data[k])
	}
	for _, k := range sortedKeys(c.BinaryData) {
		if msg := validateConfigKey(k); msg != "" {
			v.errf("binaryData["+k+"]", "%s", msg)
		}
		size += len(k) + len(c.BinaryData[k])
	}
	if size > 1<<20 {
		v.errf("data", "a ConfigMap holds at most 1 MiB, this one %d bytes; split it", size)
	}
}

func (v *validator) secret(s *Secret) {
	size := 0
	for _, k := range sortedKeys(s.Data) {
		if msg := validateConfigKey(k); msg != "" {
			v.errf("data["+k+"]", "%s", msg)
		}
		size += len(k) + len(s.Data[k])
	}
	for _, k := range sortedKeys(s.StringData) {
		if msg := validateConfigKey(k); msg != "" {
			v.errf("stringData["+k+"]", "%s", msg)
		}
	}
	if size > 1<<20 {
		v.errf("data", "a Secret holds at most 1 MiB, this one %d bytes; split it", size)
	}
	need := map[SecretType][]string{
		SecretTypeTLS:              {"tls.crt", "tls.key"},
		SecretTypeDockerConfigJSON: {".dockerconfigjson"},
		SecretTypeSSHAuth:          {"ssh-privatekey"},
	}
	for _, k := range need[s.Type] {
		if _, ok := s.Data[k]; !ok {
			v.errf("data", "a Secret of type %s needs the key %q", s.Type, k)
		}
	}
}

func (v *validator) deployment(d *Deployment) {
	s := &d.Spec
	if s.Replicas != nil && *s.Replicas < 0 {
		v.errf("spec.replicas", "must be 0 or more, is %d", *s.Replicas)
	}
	if s.MinReadySeconds < 0 {
		v.errf("spec.minReadySeconds", "must be 0 or more, is %d", s.MinReadySeconds)
	}
	if s.RevisionHistoryLimit != nil && *s.RevisionHistoryLimit < 0 {
		v.errf("spec.revisionHistoryLimit", "must be 0 or more, is %d", *s.RevisionHistoryLimit)
	}
	if s.ProgressDeadlineSeconds != nil && *s.ProgressDeadlineSeconds <= s.MinReadySeconds {
		v.errf("spec.progressDeadlineSeconds", "must be more than minReadySeconds (%d), is %d", s.MinReadySeconds, *s.ProgressDeadlineSeconds)
	}
	v.podSelector(s.Selector, s.Template.Labels, d.Name)
	v.labels(s.Template.Labels, "spec.template.metadata.labels")
	v.annotations(s.Template.Annotations, "spec.template.metadata.annotations")
	v.podSpec(&s.Template.Spec, "spec.template.spec")
	if rp := s.Template.Spec.RestartPolicy; rp != "" && rp != RestartPolicyAlways {
		v.errf("spec.template.spec.restartPolicy", "a Deployment's pods must have restartPolicy Always, not %s", rp)
	}
	switch s.Strategy.Type {
	case RollingUpdateDeploymentStrategyType:
		if ru := s.Strategy.RollingUpdate; ru != nil {
			surge := v.intOrPercent(ru.MaxSurge, "spec.strategy.rollingUpdate.maxSurge", false)
			unavail := v.intOrPercent(ru.MaxUnavailable, "spec.strategy.rollingUpdate.maxUnavailable", true)
			if surge == 0 && unavail == 0 {
				v.errf("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0; the rollout could never make progress")
			}
		}
	case RecreateDeploymentStrategyType:
		if s.Strategy.RollingUpdate != nil {
			v.errf("spec.strategy.rollingUpdate", "may not be set when strategy type is Recreate")
		}
	case "":
	default:
		v.errf("spec.strategy.type", "%q is not one of RollingUpdate, Recreate", s.Strategy.Type)
	}
}

// podSelector checks a workload's required spec.selector against its template's labels.
func (v *validator) podSelector(ls *LabelSelector, labels map[string]string, name string) {
	switch {
	case ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0):
		v.errf("spec.selector", "required; select the template's pods, such as matchLabels: {app: %s}", name)
	default:
		sel, err := SelectorFromLabelSelector(ls)
		if err != nil {
			v.errf("spec.selector", "%v", err)
		} else if !sel.Matches(labels) {
			v.errf("spec.selector", "selector %q does not match the template labels (%s); the labels under spec.template.metadata.labels must satisfy spec.selector", sel, formatLabels(labels))
		}
	}
}

// intOrPercent validates a count or percentage and returns it (-1 if
// invalid or unset).
func (v *validator) intOrPercent(x *IntOrString, p string, max100 bool) int {
	if x == nil {
		return -1
	}
	if x.Type == Int {
		if x.IntVal < 0 {
			v.errf(p, "must be 0 or more, is %d", x.IntVal)
			return -1
		}
		return int(x.IntVal)
	}
	n, err := parsePercent(x.StrVal)
	if err != nil {
		v.errf(p, "%v", err)
		return -1
	}
	if max100 && n > 100 {
		v.errf(p, "must be at most 100%%, is %s", x.StrVal)
	}
	return n
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(l))
	for _, k := range sortedKeys(l) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// podContext is what the checks of one container need to know of its pod.
type podContext struct {
	spec *PodSpec
	// volumes and containers are the names of the pod's volumes and of all its
	// containers, init containers included.
	volumes    map[string]bool
	containers map[string]bool
}

func (v *validator) podSpec(s *PodSpec, p string) {
	pc := &podContext{spec: s, volumes: map[string]bool{}, containers: map[string]bool{}}
	for _, cs := range [][]Container{s.InitContainers, s.Containers} {
		for _, c := range cs {
			pc.containers[c.Name] = true
		}
	}
	volumes := pc.volumes
	for i := range s.Volumes {
		vol := &s.Volumes[i]
		vp := idx(p+".volumes", i)
		if vol.Name == "" {
			v.errf(vp+".name", "required")
		} else if msg := validateDNS1123Label(vol.Name); msg != "" {
			v.errf(vp+".name", "%s", msg)
		} else if volumes[vol.Name] {
			v.errf(vp+".name", "duplicate volume name %q", vol.Name)
		}
		volumes[vol.Name] = true
		v.volumeSource(&vol.VolumeSource, vp, pc)
	}
	if len(s.Containers) == 0 {
		v.errf(p+".containers", "required; a pod needs at least one container")
	}
	names := map[string]bool{}
	for i := range s.InitContainers {
		v.container(&s.InitContainers[i], idx(p+".initContainers", i), names, pc, true)
		// Init containers run one at a time: each may reuse another's host port.
		v.hostPorts(s.InitContainers[i:i+1], p+".initContainers", i)
	}
	for i := range s.Containers {
		v.container(&s.Containers[i], idx(p+".containers", i), names, pc, false)
	}
	v.hostPorts(s.Containers, p+".containers", 0)
	switch s.RestartPolicy {
	case "", RestartPolicyAlways, RestartPolicyOnFailure, RestartPolicyNever:
	default:
		v.errf(p+".restartPolicy", "%q is not one of Always, OnFailure, Never", s.RestartPolicy)
	}
	if s.TerminationGracePeriodSeconds != nil && *s.TerminationGracePeriodSeconds < 0 {
		v.errf(p+".terminationGracePeriodSeconds", "must be 0 or more, is %d", *s.TerminationGracePeriodSeconds)
	}
	v.labels(s.NodeSelector, p+".nodeSelector")
	if s.Hostname != "" {
		if msg := validateDNS1123Label(s.Hostname); msg != "" {
			v.errf(p+".hostname", "%s", msg)
		}
	}
	if s.Subdomain != "" {
		if msg := validateDNS1123Label(s.Subdomain); msg != "" {
			v.errf(p+".subdomain", "%s", msg)
		}
	}
	if sc := s.SecurityContext; sc != nil {
		sp := p + ".securityContext"
		v.nonNegative(sc.RunAsUser, sp+".runAsUser")
		v.nonNegative(sc.RunAsGroup, sp+".runAsGroup")
		v.nonNegative(sc.FSGroup, sp+".fsGroup")
		for i, g := range sc.SupplementalGroups {
			if g < 0 {
				v.errf(idx(sp+".supplementalGroups", i), "must be 0 or more, is %d", g)
			}
		}
		if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			v.errf(sp+".runAsNonRoot", "contradicts runAsUser: 0; set runAsUser to a non-zero user or drop runAsNonRoot")
		}
		v.seccomp(sc.SeccompProfile, sp+".seccompProfile")
	}
	v.serviceAccountName(s, p)
	v.imagePullSecrets(s.ImagePullSecrets, p+".imagePullSecrets")
	v.hostAliases(s.HostAliases, p+".hostAliases")
	v.dns(s, p)
	v.affinity(s.Affinity, p+".affinity")
	v.tolerations(s.Tolerations, p+".tolerations")
	v.topologySpread(s.TopologySpreadConstraints, p+".topologySpreadConstraints")
}

func (v *validator) nonNegative(x *int64, p string) {
	if x != nil && *x < 0 {
		v.errf(p, "must be 0 or more, is %d", *x)
	}
}

func (v *validator) volumeSource(s *VolumeSource, p string, pc *podContext) {
	n := 0
	if s.HostPath != nil {
		n++
		if s.HostPath.Path == "" {
			v.errf(p+".hostPath.path", "required")
		} else if !path.IsAbs(s.HostPath.Path) {
			v.errf(p+".hostPath.path", "must be an absolute path, is %q", s.HostPath.Path)
		}
		if t := s.HostPath.Type; t != nil {
			switch *t {
			case HostPathUnset, HostPathDirectoryOrCreate, HostPathDirectory, HostPathFileOrCreate, HostPathFile, HostPathSocket, HostPathCharDev, HostPathBlockDev:
			default:
				v.errf(p+".hostPath.type", "%q is not one of \"\", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice", *t)
			}
		}
	}
	if s.EmptyDir != nil {
		n++
		switch s.EmptyDir.Medium {
		case StorageMediumDefault, StorageMediumMemory:
		default:
			v.errf(p+".emptyDir.medium", "%q is not \"\" or Memory", s.EmptyDir.Medium)
		}
		if q := s.EmptyDir.SizeLimit; q != nil && q.rat().Sign() < 0 {
			v.errf(p+".emptyDir.sizeLimit", "must not be negative")
		}
	}
	if s.ConfigMap != nil {
		n++
		if s.ConfigMap.Name == "" {
			v.errf(p+".configMap.name", "required; name the ConfigMap")
		} else if msg := validateDNS1123Subdomain(s.ConfigMap.Name); msg != "" {
			v.errf(p+".configMap.name", "%s", msg)
		}
		v.projection(s.ConfigMap.Items, s.ConfigMap.DefaultMode, p+".configMap")
	}
	if s.Secret != nil {
		n++
		if s.Secret.SecretName == "" {
			v.errf(p+".secret.secretName", "required; name the Secret")
		} else if msg := validateDNS1123Subdomain(s.Secret.SecretName); msg != "" {
			v.errf(p+".secret.secretName", "%s", msg)
		}
		v.projection(s.Secret.Items, s.Secret.DefaultMode, p+".secret")
	}
	if s.DownwardAPI != nil {
		n++
		v.downwardAPIVolume(s.DownwardAPI, p+".downwardAPI", pc)
	}
	if s.PersistentVolumeClaim != nil {
		n++
		if s.PersistentVolumeClaim.ClaimName == "" {
			v.errf(p+".persistentVolumeClaim.claimName", "required; name the PersistentVolumeClaim")
		} else if msg := validateDNS1123Subdomain(s.PersistentVolumeClaim.ClaimName); msg != "" {
			v.errf(p+".persistentVolumeClaim.claimName", "%s", msg)
		}
	}
	switch {
	case n == 0:
		v.errf(p, "needs a volume source: one of %s", volumeSources)
	case n > 1:
		v.errf(p, "has %d volume sources; use exactly one of %s", n, volumeSources)
	}
}

// volumeSources are the volume sources Shoal supports.
const volumeSources = "emptyDir, configMap, secret, downwardAPI, hostPath, persistentVolumeClaim"

func (v *validator) projection(items []KeyToPath, mode *int32, p string) {
	v.fileMode(mode, p+".defaultMode")
	paths := map[string]bool{}
	for i, it := range items {
		ip := idx(p+".items", i)
		if msg := validateConfigKey(it.Key); msg != "" {
			v.errf(ip+".key", "%s", msg)
		}
		if msg := nonReservedPath(it.Path); msg != "" {
			v.errf(ip+".path", "%s", msg)
		} else if paths[it.Path] {
			v.errf(ip+".path", "duplicate path %q", it.Path)
		}
		paths[it.Path] = true
		v.fileMode(it.Mode, ip+".mode")
	}
}

// nonReservedPath: a relative path that does not start with "..", which the
// files of configMap, secret and downwardAPI volumes may not (Kubernetes
// keeps its own "..data" there).
func nonReservedPath(s string) string {
	if msg := relativePath(s); msg != "" {
		return msg
	}
	if strings.HasPrefix(s, "..") {
		return fmt.Sprintf("must not start with '..', is %q", s)
	}
	return ""
}

func (v *validator) fileMode(m *int32, p string) {
	if m != nil && (*m < 0 || *m > 0o777) {
		v.errf(p, "must be a file mode between 0 and 0777 (octal) or 511 (decimal), is %d", *m)
	}
}

func relativePath(s string) string {
	if s == "" {
		return "required"
	}
	if path.IsAbs(s) {
		return fmt.Sprintf("must be a relative path, is %q", s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return fmt.Sprintf("must not contain '..', is %q", s)
		}
	}
	return ""
}

func (v *validator) container(c *Container, p string, names map[string]bool, pc *podContext, init bool) {
	volumes, podSC := pc.volumes, pc.spec.SecurityContext
	if c.Name == "" {
		v.errf(p+".name", "required")
	} else if msg := validateDNS1123Label(c.Name); msg != "" {
		v.errf(p+".name", "%s", msg)
	} else if names[c.Name] {
		v.errf(p+".name", "duplicate container name %q; names must be unique across containers and initContainers", c.Name)
	}
	names[c.Name] = true
	if strings.TrimSpace(c.Image) == "" {
		v.errf(p+".image", "required; name the image, such as nginx:1.27")
	} else if c.Image != strings.TrimSpace(c.Image) {
		v.errf(p+".image", "must not have leading or trailing whitespace")
	}
	switch c.ImagePullPolicy {
	case "", PullAlways, PullIfNotPresent, PullNever:
	default:
		v.errf(p+".imagePullPolicy", "%q is not one of Always, IfNotPresent, Never", c.ImagePullPolicy)
	}
	if c.WorkingDir != "" && !path.IsAbs(c.WorkingDir) {
		v.errf(p+".workingDir", "must be an absolute path, is %q", c.WorkingDir)
	}
	portNames := map[string]bool{}
	for i, port := range c.Ports {
		pp := idx(p+".ports", i)
		if port.ContainerPort < 1 || port.ContainerPort > 65535 {
			v.errf(pp+".containerPort", "must be between 1 and 65535, is %d", port.ContainerPort)
		}
		v.protocol(port.Protocol, pp+".protocol")
		if port.HostPort < 0 || port.HostPort > 65535 {
			v.errf(pp+".hostPort", "must be between 1 and 65535, or 0 (no host port), is %d", port.HostPort)
		}
		if port.HostIP != "" {
			if msg := checkIP(port.HostIP); msg != "" {
				v.errf(pp+".hostIP", "%s", msg)
			}
		}
		if port.Name != "" {
			if msg := validatePortName(port.Name); msg != "" {
				v.errf(pp+".name", "%s", msg)
			} else if portNames[port.Name] {
				v.errf(pp+".name", "duplicate port name %q", port.Name)
			}
			portNames[port.Name] = true
		}
	}
	envNames := map[string]bool{}
	for i, e := range c.Env {
		ep := idx(p+".env", i)
		if msg := envVarName(e.Name); msg != "" {
			v.errf(ep+".name", "%s", msg)
		}
		envNames[e.Name] = true
		if e.ValueFrom != nil {
			if e.Value != "" {
				v.errf(ep+".valueFrom", "may not be set together with value; use one of them")
			}
			v.envSource(e.ValueFrom, ep+".valueFrom", pc)
		}
	}
	for i, e := range c.EnvFrom {
		ep := idx(p+".envFrom", i)
		if e.Prefix != "" {
			if msg := envVarName(e.Prefix); msg != "" {
				v.errf(ep+".prefix", "%s", msg)
			}
		}
		n := 0
		if e.ConfigMapRef != nil {
			n++
			v.refName(e.ConfigMapRef.Name, ep+".configMapRef.name")
		}
		if e.SecretRef != nil {
			n++
			v.refName(e.SecretRef.Name, ep+".secretRef.name")
		}
		if n != 1 {
			v.errf(ep, "needs exactly one of configMapRef, secretRef")
		}
	}
	v.resources(&c.Resources, p+".resources")
	mounts := map[string]bool{}
	for i, m := range c.VolumeMounts {
		mp := idx(p+".volumeMounts", i)
		if m.Name == "" {
			v.errf(mp+".name", "required")
		} else if !volumes[m.Name] {
			v.errf(mp+".name", "no volume named %q in the pod; add it under volumes", m.Name)
		}
		switch {
		case m.MountPath == "":
			v.errf(mp+".mountPath", "required")
		case !path.IsAbs(m.MountPath):
			v.errf(mp+".mountPath", "must be an absolute path, is %q", m.MountPath)
		case mounts[path.Clean(m.MountPath)]:
			v.errf(mp+".mountPath", "another volume is already mounted at %q", m.MountPath)
		}
		mounts[path.Clean(m.MountPath)] = true
		if m.SubPath != "" {
			if msg := relativePath(m.SubPath); msg != "" {
				v.errf(mp+".subPath", "%s", msg)
			}
		}
	}
	v.containerLifecycle(c, p, pc, init)
	if c.SecurityContext != nil {
		v.securityContext(c.SecurityContext, p+".securityContext", podSC)
	}
}

func (v *validator) refName(name, p string) {
	if name == "" {
		v.errf(p, "required")
	} else if msg := validateDNS1123Subdomain(name); msg != "" {
		v.errf(p, "%s", msg)
	}
}

func envVarName(s string) string {
	if s == "" {
		return "required"
	}
	if strings.Contains(s, "=") {
		return fmt.Sprintf("environment variable name %q must not contain '='", s)
	}
	for _, r := range s {
		if r < 32 || r > 126 {
			return fmt.Sprintf("environment variable name %q must consist of printable ASCII characters", s)
		}
	}
	return ""
}

func (v *validator) envSource(s *EnvVarSource, p string, pc *podContext) {
	n := 0
	if s.FieldRef != nil {
		n++
		v.fieldRef(s.FieldRef, p+".fieldRef", envFieldPaths)
	}
	if s.ResourceFieldRef != nil {
		n++
		v.resourceFieldRef(s.ResourceFieldRef, p+".resourceFieldRef", pc, false)
	}
	if s.ConfigMapKeyRef != nil {
		n++
		v.refName(s.ConfigMapKeyRef.Name, p+".configMapKeyRef.name")
		if msg := validateConfigKey(s.ConfigMapKeyRef.Key); msg != "" {
			v.errf(p+".configMapKeyRef.key", "%s", msg)
		}
	}
	if s.SecretKeyRef != nil {
		n++
		v.refName(s.SecretKeyRef.Name, p+".secretKeyRef.name")
		if msg := validateConfigKey(s.SecretKeyRef.Key); msg != "" {
			v.errf(p+".secretKeyRef.key", "%s", msg)
		}
	}
	if n != 1 {
		v.errf(p, "needs exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef")
	}
}

func (v *validator) protocol(pr Protocol, p string) {
	switch pr {
	case "", ProtocolTCP, ProtocolUDP:
	case ProtocolSCTP:
		v.errf(p, "SCTP is %s; use TCP or UDP", notYet)
	default:
		v.errf(p, "%q is not one of TCP, UDP", pr)
	}
}

// supportedResources are the container resources Shoal supports.
var supportedResources = []ResourceName{ResourceCPU, ResourceMemory, ResourceEphemeralStorage}

func (v *validator) resources(r *ResourceRequirements, p string) {
	for _, part := range []struct {
		list ResourceList
		name string
	}{{r.Limits, "limits"}, {r.Requests, "requests"}} {
		keys := make([]string, 0, len(part.list))
		for k := range part.list {
			keys = append(keys, string(k))
		}
		slices.Sort(keys)
		for _, k := range keys {
			q := part.list[ResourceName(k)]
			fp := p + "." + part.name + "[" + k + "]"
			if !slices.Contains(supportedResources, ResourceName(k)) {
				v.errf(fp, "resource %q is %s; Shoal supports cpu, memory and ephemeral-storage", k, notYet)
				continue
			}
			if q.rat().Sign() < 0 {
				v.errf(fp, "must not be negative, is %s", q)
			}
		}
	}
	for _, k := range supportedResources {
		lim, okL := r.Limits[k]
		req, okR := r.Requests[k]
		if okL && okR && req.Cmp(lim) > 0 {
			v.errf(p+".requests["+string(k)+"]", "request %s is more than the limit %s; a request must be at most its limit", req, lim)
		}
	}
}

func (v *validator) probe(pr *Probe, p, kind string, c *Container) {
	n := 0
	if e := pr.Exec; e != nil {
		n++
		if len(e.Command) == 0 {
			v.errf(p+".exec.command", "required; give the command to run")
		}
	}
	if h := pr.HTTPGet; h != nil {
		n++
		v.httpGet(h, p+".httpGet", c)
	}
	if t := pr.TCPSocket; t != nil {
		n++
		v.probePort(t.Port, p+".tcpSocket.port", c)
	}
	if g := pr.GRPC; g != nil {
		n++
		if g.Port < 1 || g.Port > 65535 {
			v.errf(p+".grpc.port", "must be between 1 and 65535, is %d", g.Port)
		}
	}
	switch {
	case n == 0:
		v.errf(p, "needs a handler: one of exec, httpGet, tcpSocket, grpc")
	case n > 1:
		v.errf(p, "has %d handlers; use exactly one of exec, httpGet, tcpSocket, grpc", n)
	}
	if pr.InitialDelaySeconds < 0 {
		v.errf(p+".initialDelaySeconds", "must be 0 or more, is %d", pr.InitialDelaySeconds)
	}
	for _, f := range []struct {
		val  int32
		name string
	}{{pr.TimeoutSeconds, "timeoutSeconds"}, {pr.PeriodSeconds, "periodSeconds"}, {pr.SuccessThreshold, "successThreshold"}, {pr.FailureThreshold, "failureThreshold"}} {
		if f.val < 0 {
			v.errf(p+"."+f.name, "must be 1 or more, is %d", f.val)
		}
	}
	if pr.SuccessThreshold > 1 && kind != "readinessProbe" {
		v.errf(p+".successThreshold", "must be 1 for a %s, is %d", kind, pr.SuccessThreshold)
	}
	if g := pr.TerminationGracePeriodSeconds; g != nil {
		if kind == "readinessProbe" {
			v.errf(p+".terminationGracePeriodSeconds", "may not be set on a readinessProbe")
		} else if *g <= 0 {
			v.errf(p+".terminationGracePeriodSeconds", "must be 1 or more, is %d", *g)
		}
	}
}

// httpGet checks the HTTP action of a probe or a lifecycle hook.
func (v *validator) httpGet(h *HTTPGetAction, p string, c *Container) {
	v.probePort(h.Port, p+".port", c)
	switch h.Scheme {
	case "", URISchemeHTTP, URISchemeHTTPS:
	default:
		v.errf(p+".scheme", "%q is not HTTP or HTTPS", h.Scheme)
	}
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		v.errf(p+".path", "must start with '/', is %q", h.Path)
	}
	for i, hd := range h.HTTPHeaders {
		if !validHeaderName(hd.Name) {
			v.errf(idx(p+".httpHeaders", i)+".name", "%q is not a valid HTTP header name", hd.Name)
		}
	}
}

func (v *validator) probePort(port IntOrString, p string, c *Container) {
	if port.Type == Int {
		if port.IntVal < 1 || port.IntVal > 65535 {
			v.errf(p, "must be between 1 and 65535, is %d", port.IntVal)
		}
		return
	}
	if msg := validatePortName(port.StrVal); msg != "" {
		v.errf(p, "%s", msg)
		return
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return
		}
	}
	v.errf(p, "container %q has no port named %q; name it under ports or use a number", c.Name, port.StrVal)
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 127 || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// linuxCapabilities are the capability names runc knows, without CAP_.
var linuxCapabilities = map[string]bool{
	"AUDIT_CONTROL": true, "AUDIT_READ": true, "AUDIT_WRITE": true, "BLOCK_SUSPEND": true, "BPF": true,
	"CHECKPOINT_RESTORE": true, "CHOWN": true, "DAC_OVERRIDE": true, "DAC_READ_SEARCH": true, "FOWNER": true,
	"FSETID": true, "IPC_LOCK": true, "IPC_OWNER": true, "KILL": true, "LEASE": true, "LINUX_IMMUTABLE": true,
	"MAC_ADMIN": true, "MAC_OVERRIDE": true, "MKNOD": true, "NET_ADMIN": true, "NET_BIND_SERVICE": true,
	"NET_BROADCAST": true, "NET_RAW": true, "PERFMON": true, "SETFCAP": true, "SETGID": true, "SETPCAP": true,
	"SETUID": true, "SYS_ADMIN": true, "SYS_BOOT": true, "SYS_CHROOT": true, "SYS_MODULE": true, "SYS_NICE": true,
	"SYS_PACCT": true, "SYS_PTRACE": true, "SYS_RAWIO": true, "SYS_RESOURCE": true, "SYS_TIME": true,
	"SYS_TTY_CONFIG": true, "SYSLOG": true, "WAKE_ALARM": true,
}

func (v *validator) securityContext(sc *SecurityContext, p string, podSC *PodSecurityContext) {
	if caps := sc.Capabilities; caps != nil {
		for _, list := range []struct {
			caps []Capability
			name string
		}{{caps.Add, "add"}, {caps.Drop, "drop"}} {
			for i, c := range list.caps {
				name := strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
				if name != "ALL" && !linuxCapabilities[name] {
					v.errf(idx(p+".capabilities."+list.name, i), "unknown capability %q; use a Linux capability name such as NET_BIND_SERVICE, or ALL", c)
				}
			}
		}
	}
	v.nonNegative(sc.RunAsUser, p+".runAsUser")
	v.nonNegative(sc.RunAsGroup, p+".runAsGroup")
	user := sc.RunAsUser
	nonRoot := sc.RunAsNonRoot
	if podSC != nil {
		if user == nil {
			user = podSC.RunAsUser
		}
		if nonRoot == nil {
			nonRoot = podSC.RunAsNonRoot
		}
	}
	if (sc.RunAsNonRoot != nil || sc.RunAsUser != nil) && nonRoot != nil && *nonRoot && user != nil && *user == 0 {
		v.errf(p+".runAsNonRoot", "contradicts runAsUser: 0; set runAsUser to a non-zero user or drop runAsNonRoot")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if sc.Privileged != nil && *sc.Privileged {
			v.errf(p+".allowPrivilegeEscalation", "cannot be false when privileged is true")
		}
		if sc.Capabilities != nil && slices.ContainsFunc(sc.Capabilities.Add, func(c Capability) bool {
			n := strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
			return n == "SYS_ADMIN" || n == "ALL"
		}) {
			v.errf(p+".allowPrivilegeEscalation", "cannot be false when adding SYS_ADMIN")
		}
	}
	v.seccomp(sc.SeccompProfile, p+".seccompProfile")
}

func (v *validator) seccomp(s *SeccompProfile, p string) {
	if s == nil {
		return
	}
	switch s.Type {
	case SeccompProfileTypeLocalhost:
		if s.LocalhostProfile == nil || *s.LocalhostProfile == "" {
			v.errf(p+".localhostProfile", "required when type is Localhost; give the profile's path relative to the node's seccomp directory")
		} else if msg := relativePath(*s.LocalhostProfile); msg != "" {
			v.errf(p+".localhostProfile", "%s", msg)
		}
	case SeccompProfileTypeRuntimeDefault, SeccompProfileTypeUnconfined:
		if s.LocalhostProfile != nil {
			v.errf(p+".localhostProfile", "may only be set when type is Localhost")
		}
	case "":
		v.errf(p+".type", "required; one of RuntimeDefault, Unconfined, Localhost")
	default:
		v.errf(p+".type", "%q is not one of RuntimeDefault, Unconfined, Localhost", s.Type)
	}
}

func (v *validator) service(s *Service) {
	sp := &s.Spec
	switch sp.Type {
	case "", ServiceTypeClusterIP, ServiceTypeNodePort, ServiceTypeLoadBalancer:
	case ServiceTypeExternalName:
		v.errf("spec.type", "%s is %s; use ClusterIP, NodePort or LoadBalancer", sp.Type, notYet)
	default:
		v.errf("spec.type", "%q is not one of ClusterIP, NodePort, LoadBalancer", sp.Type)
	}
	switch sp.ExternalTrafficPolicy {
	case "", ExternalTrafficCluster:
	case ExternalTrafficLocal:
		if sp.Type != ServiceTypeNodePort && sp.Type != ServiceTypeLoadBalancer {
			v.errf("spec.externalTrafficPolicy", "may only be set when type is NodePort or LoadBalancer")
		}
	default:
		v.errf("spec.externalTrafficPolicy", "%q is not one of Cluster, Local", sp.ExternalTrafficPolicy)
	}
	headless := sp.ClusterIP == ClusterIPNone
	switch {
	case sp.ClusterIP == "" || headless:
	default:
		if a, err := netip.ParseAddr(sp.ClusterIP); err != nil || !a.Is4() {
			v.errf("spec.clusterIP", "%q is not an IPv4 address, \"None\" (headless) or empty (allocated)", sp.ClusterIP)
		}
	}
	if len(sp.ClusterIPs) > 0 {
		if sp.ClusterIPs[0] != sp.ClusterIP && sp.ClusterIP != "" {
			v.errf("spec.clusterIPs[0]", "must equal clusterIP %q, is %q", sp.ClusterIP, sp.ClusterIPs[0])
		}
		if len(sp.ClusterIPs) > 1 {
			v.errf("spec.clusterIPs", "dual-stack Services are %s; give one address", notYet)
		}
	}
	if headless && sp.Type.HasNodePorts() {
		v.errf("spec.clusterIP", "a %s Service cannot be headless (clusterIP: None)", sp.Type)
	}
	if len(sp.Ports) == 0 && !headless {
		v.errf("spec.ports", "required; a Service needs at least one port")
	}
	names := map[string]bool{}
	type portKey struct {
		port  int32
		proto Protocol
	}
	seen := map[portKey]bool{}
	nodePorts := map[portKey]bool{}
	for i, port := range sp.Ports {
		pp := idx("spec.ports", i)
		if port.Name == "" {
			if len(sp.Ports) > 1 {
				v.errf(pp+".name", "required when a Service has more than one port")
			}
		} else if msg := validateDNS1123Label(port.Name); msg != "" {
			v.errf(pp+".name", "%s", msg)
		} else if names[port.Name] {
			v.errf(pp+".name", "duplicate port name %q", port.Name)
		}
		names[port.Name] = true
		if port.Port < 1 || port.Port > 65535 {
			v.errf(pp+".port", "must be between 1 and 65535, is %d", port.Port)
		}
		v.protocol(port.Protocol, pp+".protocol")
		k := portKey{port.Port, port.Protocol}
		if seen[k] {
			v.errf(pp+".port", "duplicate port %d/%s", port.Port, port.Protocol)
		}
		seen[k] = true
		if port.TargetPort.Type == Int {
			if port.TargetPort.IntVal < 1 || port.TargetPort.IntVal > 65535 {
				v.errf(pp+".targetPort", "must be between 1 and 65535, is %d", port.TargetPort.IntVal)
			}
		} else if msg := validatePortName(port.TargetPort.StrVal); msg != "" {
			v.errf(pp+".targetPort", "%s", msg)
		}
		if port.NodePort != 0 {
			switch {
			case !sp.Type.HasNodePorts():
				v.errf(pp+".nodePort", "may only be set when type is NodePort or LoadBalancer")
			case port.NodePort < 30000 || port.NodePort > 32767:
				v.errf(pp+".nodePort", "must be between 30000 and 32767, is %d", port.NodePort)
			case nodePorts[portKey{port.NodePort, port.Protocol}]:
				v.errf(pp+".nodePort", "duplicate nodePort %d/%s", port.NodePort, port.Protocol)
			}
			nodePorts[portKey{port.NodePort, port.Protocol}] = true
		}
	}
	v.labels(sp.Selector, "spec.selector")
	switch sp.SessionAffinity {
	case "", ServiceAffinityNone:
		if sp.SessionAffinityConfig != nil {
			v.errf("spec.sessionAffinityConfig", "may only be set when sessionAffinity is ClientIP")
		}
	case ServiceAffinityClientIP:
		if c := sp.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > 86400 {
				v.errf("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "must be between 1 and 86400, is %d", t)
			}
		}
	default:
		v.errf("spec.sessionAffinity", "%q is not one of None, ClientIP", sp.SessionAffinity)
	}
}

// podTemplate is a pod shape found in the tree: a Pod or a Deployment's
// template.
type podTemplate struct {
	key       ObjectKey
	namespace string
	labels    map[string]string
	spec      *PodSpec
	// specPath is the field path of spec in the object, src where it was read.
	specPath string
	src      *source
}

func podTemplates(items []located) []podTemplate {
	var pods []podTemplate
	for _, it := range items {
		switch o := it.obj.(type) {
		case *Pod:
			pods = append(pods, podTemplate{KeyOf(o), o.Namespace, o.Labels, &o.Spec, "spec", it.src})
		case *Deployment:
			pods = append(pods, podTemplate{KeyOf(o), o.Namespace, o.Spec.Template.Labels, &o.Spec.Template.Spec, "spec.template.spec", it.src})
		case *DaemonSet:
			pods = append(pods, podTemplate{KeyOf(o), o.Namespace, o.Spec.Template.Labels, &o.Spec.Template.Spec, "spec.template.spec", it.src})
		case *StatefulSet:
			pods = append(pods, podTemplate{KeyOf(o), o.Namespace, o.Spec.Template.Labels, &o.Spec.Template.Spec, "spec.template.spec", it.src})
		case *Job:
			pods = append(pods, podTemplate{KeyOf(o), o.Namespace, o.Spec.Template.Labels, &o.Spec.Template.Spec, "spec.template.spec", it.src})
		case *CronJob:
			t := &o.Spec.JobTemplate.Spec.Template
			pods = append(pods, podTemplate{KeyOf(o), o.Namespace, t.Labels, &t.Spec, "spec.jobTemplate.spec.template.spec", it.src})
		}
	}
	return pods
}

// crossObject checks what spans objects: Service target port names against
// the pods they select, node ports used twice, and the ports LoadBalancer
// Services open on every node.
func (v *validator) crossObject(items []located, pods []podTemplate) {
	v.nodePortsUsedTwice(items)
	v.loadBalancerPorts(items, pods)
	// Index the pod templates by namespace and label, so that a Service's selector is matched
	// against the pods that carry one of its labels rather than against every pod.
	byLabel := map[string][]int{}
	for i, p := range pods {
		for k, val := range p.labels {
			key := p.namespace + "\x00" + k + "=" + val
			byLabel[key] = append(byLabel[key], i)
		}
	}
	for _, it := range items {
		svc, ok := it.obj.(*Service)
		if !ok {
			continue
		}
		v.src = it.src
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		var firstKey string
		for k := range svc.Spec.Selector {
			if firstKey == "" || k < firstKey {
				firstKey = k
			}
		}
		candidates := byLabel[svc.Namespace+"\x00"+firstKey+"="+svc.Spec.Selector[firstKey]]
		for i, port := range svc.Spec.Ports {
			if port.TargetPort.Type != String || validatePortName(port.TargetPort.StrVal) != "" {
				continue
			}
			for _, pi := range candidates {
				pod := pods[pi]
				if !matchesMap(svc.Spec.Selector, pod.labels) {
					continue
				}
				if hasPortNamed(pod.spec, port.TargetPort.StrVal) {
					continue
				}
				v.errf(idx("spec.ports", i)+".targetPort", "port name %q is not a port of %s, which this Service selects (its ports: %s); name a container port %q or use a number",
					port.TargetPort.StrVal, pod.key, portNames(pod.spec), port.TargetPort.StrVal)
			}
		}
	}
}

// nodePortKey is a port of every node's address.
type nodePortKey struct {
	port  int32
	proto Protocol
}

// nodePortsUsedTwice refuses an explicit nodePort that two Services ask for.
func (v *validator) nodePortsUsedTwice(items []located) {
	nodePorts := map[nodePortKey]string{}
	for _, it := range items {
		svc, ok := it.obj.(*Service)
		if !ok || !svc.Spec.Type.HasNodePorts() {
			continue
		}
		v.src = it.src
		for i, port := range svc.Spec.Ports {
			if port.NodePort == 0 {
				continue
			}
			k := nodePortKey{port.NodePort, port.Protocol}
			if other, dup := nodePorts[k]; dup && other != KeyOf(svc).String() {
				v.errf(idx("spec.ports", i)+".nodePort", "nodePort %d/%s is already used by %s", port.NodePort, port.Protocol, other)
			}
			nodePorts[k] = KeyOf(svc).String()
		}
	}
}

// loadBalancerPorts refuses a LoadBalancer Service's port that something
// else of the commit takes on the nodes' addresses: each LoadBalancer port
// is opened on every node, so it cannot be an explicit nodePort or a
// container's host port. Two LoadBalancer Services on one port are a warning
// (loadBalancerSharing): one of them stays pending.
func (v *validator) loadBalancerPorts(items []located, pods []podTemplate) {
	type owner struct {
		svc  ObjectKey
		port int // index in spec.ports
	}
	nodePorts := map[nodePortKey]owner{}
	for _, it := range items {
		if svc, ok := it.obj.(*Service); ok && svc.Spec.Type.HasNodePorts() {
			for i, port := range svc.Spec.Ports {
				k := nodePortKey{port.NodePort, port.Protocol}
				if _, taken := nodePorts[k]; port.NodePort != 0 && !taken {
					nodePorts[k] = owner{KeyOf(svc), i}
				}
			}
		}
	}
	hostPorts := map[nodePortKey]string{}
	for _, p := range pods {
		for _, list := range []struct {
			field string
			cs    []Container
		}{{"initContainers", p.spec.InitContainers}, {"containers", p.spec.Containers}} {
			for i, c := range list.cs {
				for j, port := range c.Ports {
					k := nodePortKey{port.HostPort, port.Protocol}
					if _, taken := hostPorts[k]; port.HostPort == 0 || taken || onLoopback(port.HostIP) {
						continue
					}
					hostPorts[k] = fmt.Sprintf("%s (%s.%s[%d].ports[%d].hostPort)", p.key, p.specPath, list.field, i, j)
				}
			}
		}
	}
	for _, it := range items {
		svc, ok := it.obj.(*Service)
		if !ok || svc.Spec.Type != ServiceTypeLoadBalancer {
			continue
		}
		v.src = it.src
		self := KeyOf(svc)
		for i, port := range svc.Spec.Ports {
			k, pp := nodePortKey{port.Port, port.Protocol}, idx("spec.ports", i)+".port"
			if o, taken := nodePorts[k]; taken {
				by := o.svc.String()
				if o.svc == self {
					by = "this Service (" + idx("spec.ports", o.port) + ")"
				}
				v.errf(pp, "port %d/%s is opened on every node, and it is the nodePort of %s; use another port", port.Port, port.Protocol, by)
			}
			if by, taken := hostPorts[k]; taken {
				v.errf(pp, "port %d/%s is opened on every node, and it is a host port of %s; use another port", port.Port, port.Protocol, by)
			}
		}
	}
}

// onLoopback reports whether a host port's hostIP is a loopback address,
// which the nodes' addresses never are.
func onLoopback(hostIP string) bool {
	a, err := netip.ParseAddr(hostIP)
	return err == nil && a.IsLoopback()
}

func matchesMap(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func hasPortNamed(s *PodSpec, name string) bool {
	for _, c := range s.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func portNames(s *PodSpec) string {
	var names []string
	for _, c := range s.Containers {
		for _, p := range c.Ports {
			if p.Name != "" {
				names = append(names, p.Name)
			}
		}
	}
	if len(names) == 0 {
		return "none named"
	}
	return strings.Join(names, ", ")
}
