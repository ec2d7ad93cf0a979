package manifests

import (
	"encoding/json"
	"hash/fnv"
	"strings"
)

// Kubernetes defaults that SetDefaults applies.
const (
	DefaultNamespace                     = "default"
	DefaultReplicas                      = 1
	DefaultRevisionHistoryLimit          = 10
	DefaultProgressDeadlineSeconds       = 600
	DefaultTerminationGracePeriodSeconds = 30
	DefaultProbePeriodSeconds            = 10
	DefaultProbeTimeoutSeconds           = 1
	DefaultProbeSuccessThreshold         = 1
	DefaultProbeFailureThreshold         = 3
	DefaultVolumeMode                    = 0o644
	DefaultMaxSurge                      = "25%"
	DefaultMaxUnavailable                = "25%"
	// DefaultServiceAccountName is the account of pods that name none; every
	// namespace has it.
	DefaultServiceAccountName = "default"
	// RBACGroup is the API group of Role, ClusterRole and their bindings.
	RBACGroup = "rbac.authorization.k8s.io"
)

// SetDefaults fills unset fields as the Kubernetes API server does. It is
// idempotent.
func SetDefaults(obj Object) {
	meta := obj.GetObjectMeta()
	if _, ki, ok := kindByName(obj.GetKind()); ok && kinds[ki].namespaced && meta.Namespace == "" {
		meta.Namespace = DefaultNamespace
	}
	switch o := obj.(type) {
	case *Pod:
		defaultPodSpec(&o.Spec)
	case *Deployment:
		defaultDeployment(o)
	case *DaemonSet:
		defaultDaemonSet(o)
	case *StatefulSet:
		defaultStatefulSet(o)
	case *HorizontalPodAutoscaler:
		defaultHPA(o)
	case *PersistentVolumeClaim:
		defaultPersistentVolumeClaim(o)
	case *StorageClass:
		defaultStorageClass(o)
	case *Job:
		defaultJobSpec(&o.Spec)
		if o.Name == "" && o.GenerateName != "" {
			o.Name = generatedName(o.GenerateName, o)
		}
	case *CronJob:
		defaultCronJob(o)
	case *Service:
		defaultService(o)
	case *Secret:
		defaultSecret(o)
	case *ClusterRole:
		// The API server drops the namespace of cluster-scoped objects.
		o.Namespace = ""
	case *RoleBinding:
		defaultSubjects(o.Subjects)
	case *ClusterRoleBinding:
		o.Namespace = ""
		defaultSubjects(o.Subjects)
	}
}

// defaultSubjects sets the API group of User and Group subjects, as the
// rbac/v1 defaults do.
func defaultSubjects(subjects []Subject) {
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == "User" || s.Kind == "Group") {
			s.APIGroup = RBACGroup
		}
	}
}

func ptr[T any](v T) *T { return &v }

func defaultDeployment(d *Deployment) {
	s := &d.Spec
	if s.Replicas == nil {
		s.Replicas = ptr[int32](DefaultReplicas)
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &RollingUpdateDeployment{}
		}
		ru := s.Strategy.RollingUpdate
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = ptr(FromString(DefaultMaxUnavailable))
		}
		if ru.MaxSurge == nil {
			ru.MaxSurge = ptr(FromString(DefaultMaxSurge))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptr[int32](DefaultRevisionHistoryLimit)
	}
	if s.ProgressDeadlineSeconds == nil {
		s.ProgressDeadlineSeconds = ptr[int32](DefaultProgressDeadlineSeconds)
	}
	defaultPodSpec(&s.Template.Spec)
}

func defaultPodSpec(s *PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = DNSClusterFirst
	}
	defaultServiceAccount(s)
	for i := range s.Tolerations {
		if s.Tolerations[i].Operator == "" {
			s.Tolerations[i].Operator = TolerationOpEqual
		}
	}
	for i := range s.TopologySpreadConstraints {
		c := &s.TopologySpreadConstraints[i]
		// What the scheduler does when they are unset.
		if c.NodeAffinityPolicy == nil {
			c.NodeAffinityPolicy = ptr(NodeInclusionPolicyHonor)
		}
		if c.NodeTaintsPolicy == nil {
			c.NodeTaintsPolicy = ptr(NodeInclusionPolicyIgnore)
		}
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr[int64](DefaultTerminationGracePeriodSeconds)
	}
	for i := range s.Volumes {
		v := &s.Volumes[i].VolumeSource
		switch {
		case v.ConfigMap != nil:
			if v.ConfigMap.DefaultMode == nil {
				v.ConfigMap.DefaultMode = ptr[int32](DefaultVolumeMode)
			}
		case v.Secret != nil:
			if v.Secret.DefaultMode == nil {
				v.Secret.DefaultMode = ptr[int32](DefaultVolumeMode)
			}
		case v.HostPath != nil:
			if v.HostPath.Type == nil {
				v.HostPath.Type = ptr(HostPathUnset)
			}
		case v.DownwardAPI != nil:
			if v.DownwardAPI.DefaultMode == nil {
				v.DownwardAPI.DefaultMode = ptr[int32](DefaultVolumeMode)
			}
			for j := range v.DownwardAPI.Items {
				defaultFieldRef(v.DownwardAPI.Items[j].FieldRef)
				defaultResourceFieldRef(v.DownwardAPI.Items[j].ResourceFieldRef)
			}
		}
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
}

func defaultContainer(c *Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = ProtocolTCP
		}
	}
	for _, p := range []*Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		defaultProbe(p)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = DefaultTerminationMessagePath
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = TerminationMessageReadFile
	}
	if l := c.Lifecycle; l != nil {
		for _, h := range []*LifecycleHandler{l.PostStart, l.PreStop} {
			if h != nil {
				defaultHTTPGet(h.HTTPGet)
			}
		}
	}
	for i := range c.Env {
		if src := c.Env[i].ValueFrom; src != nil {
			defaultFieldRef(src.FieldRef)
			defaultResourceFieldRef(src.ResourceFieldRef)
		}
	}
}

// defaultServiceAccount copies serviceAccountName and its deprecated alias
// serviceAccount to each other, as the v1 API does, and names the default
// account when neither is set, as the ServiceAccount admission does.
func defaultServiceAccount(s *PodSpec) {
	switch {
	case s.ServiceAccountName == "" && s.DeprecatedServiceAccount == "":
		s.ServiceAccountName = DefaultServiceAccountName
		s.DeprecatedServiceAccount = DefaultServiceAccountName
	case s.ServiceAccountName == "":
		s.ServiceAccountName = s.DeprecatedServiceAccount
	case s.DeprecatedServiceAccount == "":
		s.DeprecatedServiceAccount = s.ServiceAccountName
	}
}

func defaultFieldRef(f *ObjectFieldSelector) {
	if f != nil && f.APIVersion == "" {
		f.APIVersion = "v1"
	}
}

// defaultResourceFieldRef sets the divisor to 1. Kubernetes leaves it unset
// (shown as "0"), and a zero divisor means 1.
func defaultResourceFieldRef(r *ResourceFieldSelector) {
	if r != nil && (r.Divisor == nil || r.Divisor.IsZero()) {
		one, _ := ParseQuantity("1")
		r.Divisor = &one
	}
}

// defaultPullPolicy is Always for images without a tag or tagged latest,
// IfNotPresent otherwise (including images pinned by digest).
func defaultPullPolicy(image string) PullPolicy {
	if strings.Contains(image, "@") {
		return PullIfNotPresent
	}
	name := image
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		tag = name[i+1:]
	}
	if tag == "" || tag == "latest" {
		return PullAlways
	}
	return PullIfNotPresent
}

func defaultProbe(p *Probe) {
	if p == nil {
		return
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = DefaultProbePeriodSeconds
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = DefaultProbeTimeoutSeconds
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = DefaultProbeSuccessThreshold
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultProbeFailureThreshold
	}
	defaultHTTPGet(p.HTTPGet)
}

func defaultHTTPGet(h *HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Scheme == "" {
		h.Scheme = URISchemeHTTP
	}
	if h.Path == "" {
		h.Path = "/"
	}
}

func defaultService(s *Service) {
	sp := &s.Spec
	if sp.Type == "" {
		sp.Type = ServiceTypeClusterIP
	}
	if sp.SessionAffinity == "" {
		sp.SessionAffinity = ServiceAffinityNone
	}
	if sp.SessionAffinity == ServiceAffinityClientIP {
		if sp.SessionAffinityConfig == nil {
			sp.SessionAffinityConfig = &SessionAffinityConfig{}
		}
		if sp.SessionAffinityConfig.ClientIP == nil {
			sp.SessionAffinityConfig.ClientIP = &ClientIPConfig{}
		}
		if sp.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			sp.SessionAffinityConfig.ClientIP.TimeoutSeconds = ptr[int32](DefaultClientIPTimeoutSeconds)
		}
	}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		if p.Protocol == "" {
			p.Protocol = ProtocolTCP
		}
		if p.TargetPort.IsZero() {
			p.TargetPort = FromInt(p.Port)
		}
	}
}

func defaultSecret(s *Secret) {
	if s.Type == "" {
		s.Type = SecretTypeOpaque
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = make(map[string][]byte, len(s.StringData))
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	}
}

func defaultJobSpec(s *JobSpec) {
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = ptr[int32](1)
	}
	if s.Parallelism == nil {
		s.Parallelism = ptr[int32](DefaultParallelism)
	}
	if s.BackoffLimit == nil {
		s.BackoffLimit = ptr[int32](DefaultBackoffLimit)
	}
	if s.CompletionMode == nil {
		s.CompletionMode = ptr(NonIndexedCompletion)
	}
	if s.Suspend == nil {
		s.Suspend = ptr(false)
	}
	if s.PodReplacementPolicy == nil {
		if s.PodFailurePolicy != nil {
			s.PodReplacementPolicy = ptr(Failed)
		} else {
			s.PodReplacementPolicy = ptr(TerminatingOrFailed)
		}
	}
	for i := range s.podFailureRules() {
		for j := range s.PodFailurePolicy.Rules[i].OnPodConditions {
			c := &s.PodFailurePolicy.Rules[i].OnPodConditions[j]
			if c.Status == "" {
				c.Status = ConditionTrue
			}
		}
	}
	defaultPodSpec(&s.Template.Spec)
}

// podFailureRules returns the rules of the pod failure policy, nil without one.
func (s *JobSpec) podFailureRules() []PodFailurePolicyRule {
	if s.PodFailurePolicy == nil {
		return nil
	}
	return s.PodFailurePolicy.Rules
}

func defaultCronJob(c *CronJob) {
	s := &c.Spec
	if s.ConcurrencyPolicy == "" {
		s.ConcurrencyPolicy = AllowConcurrent
	}
	if s.Suspend == nil {
		s.Suspend = ptr(false)
	}
	if s.SuccessfulJobsHistoryLimit == nil {
		s.SuccessfulJobsHistoryLimit = ptr[int32](DefaultSuccessfulJobsLimit)
	}
	if s.FailedJobsHistoryLimit == nil {
		s.FailedJobsHistoryLimit = ptr[int32](DefaultFailedJobsLimit)
	}
	defaultJobSpec(&s.JobTemplate.Spec)
}

// generatedName is prefix and five characters of a hash of obj's labels, annotations and spec,
// from the consonants and digits of Kubernetes' generated names: the same object gets the same
// name on every node and in every pass, a changed one a new name.
func generatedName(prefix string, obj *Job) string {
	h := fnv.New32a()
	_ = json.NewEncoder(h).Encode(struct {
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Spec        JobSpec           `json:"spec"`
	}{obj.Labels, obj.Annotations, obj.Spec})
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	sum := h.Sum32()
	b := make([]byte, 5)
	for i := range b {
		b[i] = alphabet[sum%uint32(len(alphabet))]
		sum /= uint32(len(alphabet))
	}
	return prefix + string(b)
}
