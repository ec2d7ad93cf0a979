package manifests

import (
	"slices"
	"strconv"
)

// StatefulSet is an apps/v1 StatefulSet: pods with stable names (web-0,
// web-1, ...), each with its own claims made from volumeClaimTemplates,
// which a replaced pod keeps.
type StatefulSet struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       StatefulSetSpec   `json:"spec,omitempty"`
	Status     StatefulSetStatus `json:"status,omitempty"`
}

// StatefulSetSpec is the desired state of a StatefulSet.
type StatefulSetSpec struct {
	Replicas *int32          `json:"replicas,omitempty"`
	Selector *LabelSelector  `json:"selector"`
	Template PodTemplateSpec `json:"template"`
	// VolumeClaimTemplates make one claim per pod,
	// <template>-<set>-<ordinal>, mounted as the volume named after the
	// template.
	VolumeClaimTemplates []PersistentVolumeClaim `json:"volumeClaimTemplates,omitempty"`
	// ServiceName is the headless Service that gives the pods their names:
	// <pod>.<serviceName>.<namespace>.svc.<cluster domain>.
	ServiceName                          string                                           `json:"serviceName,omitempty"`
	PodManagementPolicy                  PodManagementPolicyType                          `json:"podManagementPolicy,omitempty"`
	UpdateStrategy                       StatefulSetUpdateStrategy                        `json:"updateStrategy,omitempty"`
	RevisionHistoryLimit                 *int32                                           `json:"revisionHistoryLimit,omitempty"`
	MinReadySeconds                      int32                                            `json:"minReadySeconds,omitempty"`
	PersistentVolumeClaimRetentionPolicy *StatefulSetPersistentVolumeClaimRetentionPolicy `json:"persistentVolumeClaimRetentionPolicy,omitempty"`
	Ordinals                             *StatefulSetOrdinals                             `json:"ordinals,omitempty"`
}

// PodManagementPolicyType is OrderedReady or Parallel.
type PodManagementPolicyType string

// Pod management policies.
const (
	// OrderedReadyPodManagement creates pods in ordinal order, each once the
	// one before it is Running and Ready, and removes them in reverse order.
	OrderedReadyPodManagement PodManagementPolicyType = "OrderedReady"
	// ParallelPodManagement creates and removes pods all at once.
	ParallelPodManagement PodManagementPolicyType = "Parallel"
)

// StatefulSetUpdateStrategyType is RollingUpdate or OnDelete.
type StatefulSetUpdateStrategyType string

// StatefulSet update strategies.
const (
	RollingUpdateStatefulSetStrategyType StatefulSetUpdateStrategyType = "RollingUpdate"
	OnDeleteStatefulSetStrategyType      StatefulSetUpdateStrategyType = "OnDelete"
)

// StatefulSetUpdateStrategy is how a StatefulSet replaces its pods when its
// template changes.
type StatefulSetUpdateStrategy struct {
	Type          StatefulSetUpdateStrategyType     `json:"type,omitempty"`
	RollingUpdate *RollingUpdateStatefulSetStrategy `json:"rollingUpdate,omitempty"`
}

// RollingUpdateStatefulSetStrategy bounds a rolling update: only the pods
// with an ordinal at or above Partition are updated.
type RollingUpdateStatefulSetStrategy struct {
	Partition *int32 `json:"partition,omitempty"`
}

// Claim retention policies.
const (
	RetainClaimRetention = "Retain"
	DeleteClaimRetention = "Delete"
)

// StatefulSetPersistentVolumeClaimRetentionPolicy says what becomes of the
// claims made from volumeClaimTemplates when the StatefulSet is removed
// (WhenDeleted) or scaled down (WhenScaled): Retain or Delete.
type StatefulSetPersistentVolumeClaimRetentionPolicy struct {
	WhenDeleted string `json:"whenDeleted,omitempty"`
	WhenScaled  string `json:"whenScaled,omitempty"`
}

// StatefulSetOrdinals sets the first ordinal of a StatefulSet's pods.
type StatefulSetOrdinals struct {
	Start int32 `json:"start,omitempty"`
}

// StatefulSetStatus is a StatefulSet's observed state.
type StatefulSetStatus struct {
	ObservedGeneration int64                  `json:"observedGeneration,omitempty"`
	Replicas           int32                  `json:"replicas"`
	ReadyReplicas      int32                  `json:"readyReplicas,omitempty"`
	CurrentReplicas    int32                  `json:"currentReplicas,omitempty"`
	UpdatedReplicas    int32                  `json:"updatedReplicas,omitempty"`
	AvailableReplicas  int32                  `json:"availableReplicas"`
	CurrentRevision    string                 `json:"currentRevision,omitempty"`
	UpdateRevision     string                 `json:"updateRevision,omitempty"`
	CollisionCount     *int32                 `json:"collisionCount,omitempty"`
	Conditions         []StatefulSetCondition `json:"conditions,omitempty"`
}

// StatefulSetCondition is one condition of a StatefulSet.
type StatefulSetCondition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	LastTransitionTime Time            `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// Labels Kubernetes puts on a StatefulSet's pods.
const (
	StatefulSetPodNameLabel = "statefulset.kubernetes.io/pod-name"
	PodIndexLabel           = "apps.kubernetes.io/pod-index"
)

// DeepCopyObject returns an independent copy of the StatefulSet.
func (s *StatefulSet) DeepCopyObject() Object { return clone(s) }

// StartOrdinal is the ordinal of the set's first pod.
func (s *StatefulSet) StartOrdinal() int32 {
	if s.Spec.Ordinals == nil {
		return 0
	}
	return s.Spec.Ordinals.Start
}

// PodName is the name of the set's pod with the ordinal.
func (s *StatefulSet) PodName(ordinal int32) string {
	return s.Name + "-" + strconv.Itoa(int(ordinal))
}

// ClaimName is the name of the claim the template makes for the pod with
// the ordinal, as Kubernetes names it: <template>-<set>-<ordinal>.
func (s *StatefulSet) ClaimName(template string, ordinal int32) string {
	return template + "-" + s.PodName(ordinal)
}

// PodSpecFor returns the pod spec of the pod with the ordinal made from
// spec (the set's template, or the template of an older revision): its
// volumes named after a claim template are that pod's claims, its
// hostname is the pod's name and its subdomain the set's serviceName.
func (s *StatefulSet) PodSpecFor(spec *PodSpec, ordinal int32) *PodSpec {
	out := spec.DeepCopy()
	for _, t := range s.Spec.VolumeClaimTemplates {
		v := Volume{Name: t.Name, VolumeSource: VolumeSource{PersistentVolumeClaim: &PersistentVolumeClaimVolumeSource{ClaimName: s.ClaimName(t.Name, ordinal)}}}
		if i := slices.IndexFunc(out.Volumes, func(x Volume) bool { return x.Name == t.Name }); i >= 0 {
			out.Volumes[i] = v
		} else {
			out.Volumes = append(out.Volumes, v)
		}
	}
	out.Hostname = s.PodName(ordinal)
	out.Subdomain = s.Spec.ServiceName
	return out
}

// ClaimRetention is the set's claim retention policy, defaults applied.
func (s *StatefulSet) ClaimRetention() StatefulSetPersistentVolumeClaimRetentionPolicy {
	p := StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: RetainClaimRetention, WhenScaled: RetainClaimRetention}
	if r := s.Spec.PersistentVolumeClaimRetentionPolicy; r != nil {
		if r.WhenDeleted != "" {
			p.WhenDeleted = r.WhenDeleted
		}
		if r.WhenScaled != "" {
			p.WhenScaled = r.WhenScaled
		}
	}
	return p
}

func defaultStatefulSet(s *StatefulSet) {
	sp := &s.Spec
	if sp.Replicas == nil {
		sp.Replicas = ptr[int32](DefaultReplicas)
	}
	if sp.PodManagementPolicy == "" {
		sp.PodManagementPolicy = OrderedReadyPodManagement
	}
	if sp.UpdateStrategy.Type == "" {
		sp.UpdateStrategy.Type = RollingUpdateStatefulSetStrategyType
	}
	if sp.UpdateStrategy.Type == RollingUpdateStatefulSetStrategyType {
		if sp.UpdateStrategy.RollingUpdate == nil {
			sp.UpdateStrategy.RollingUpdate = &RollingUpdateStatefulSetStrategy{}
		}
		if sp.UpdateStrategy.RollingUpdate.Partition == nil {
			sp.UpdateStrategy.RollingUpdate.Partition = ptr[int32](0)
		}
	}
	if sp.RevisionHistoryLimit == nil {
		sp.RevisionHistoryLimit = ptr[int32](DefaultRevisionHistoryLimit)
	}
	if sp.PersistentVolumeClaimRetentionPolicy == nil {
		sp.PersistentVolumeClaimRetentionPolicy = &StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	r := sp.PersistentVolumeClaimRetentionPolicy
	if r.WhenDeleted == "" {
		r.WhenDeleted = RetainClaimRetention
	}
	if r.WhenScaled == "" {
		r.WhenScaled = RetainClaimRetention
	}
	for i := range sp.VolumeClaimTemplates {
		t := &sp.VolumeClaimTemplates[i]
		defaultPersistentVolumeClaim(t)
		if t.Namespace == "" {
			t.Namespace = s.Namespace
		}
	}
	defaultPodSpec(&sp.Template.Spec)
}

func (v *validator) statefulSet(s *StatefulSet) {
	sp := &s.Spec
	if sp.Replicas != nil && *sp.Replicas < 0 {
		v.errf("spec.replicas", "must be 0 or more, is %d", *sp.Replicas)
	}
	if sp.MinReadySeconds < 0 {
		v.errf("spec.minReadySeconds", "must be 0 or more, is %d", sp.MinReadySeconds)
	}
	if sp.RevisionHistoryLimit != nil && *sp.RevisionHistoryLimit < 0 {
		v.errf("spec.revisionHistoryLimit", "must be 0 or more, is %d", *sp.RevisionHistoryLimit)
	}
	if sp.Ordinals != nil && sp.Ordinals.Start < 0 {
		v.errf("spec.ordinals.start", "must be 0 or more, is %d", sp.Ordinals.Start)
	}
	if sp.ServiceName != "" {
		if msg := validateDNS1123Label(sp.ServiceName); msg != "" {
			v.errf("spec.serviceName", "%s", msg)
		}
	}
	// A pod's name is also its hostname: <set>-<ordinal> must be a DNS label.
	if msg := validateDNS1123Label(s.PodName(s.StartOrdinal() + max(ptrValue(sp.Replicas, 1), 1) - 1)); s.Name != "" && msg != "" {
		v.errf("metadata.name", "the pods' names (%s) must be DNS labels, their hostnames: %s", s.PodName(s.StartOrdinal()), msg)
	}
	v.podSelector(sp.Selector, sp.Template.Labels, s.Name)
	v.labels(sp.Template.Labels, "spec.template.metadata.labels")
	v.annotations(sp.Template.Annotations, "spec.template.metadata.annotations")
	// The pods are validated as the set makes them: the claim templates are
	// volumes of the pod.
	seen := map[string]bool{}
	for i := range sp.VolumeClaimTemplates {
		t := &sp.VolumeClaimTemplates[i]
		p := idx("spec.volumeClaimTemplates", i)
		switch {
		case t.Name == "":
			v.errf(p+".metadata.name", "required; the name of the pod volume the claims are mounted as")
		case validateDNS1123Label(t.Name) != "":
			v.errf(p+".metadata.name", "%s", validateDNS1123Label(t.Name))
		case seen[t.Name]:
			v.errf(p+".metadata.name", "duplicate claim template %q", t.Name)
		case !templateMounted(&sp.Template.Spec, t.Name):
			v.errf(p+".metadata.name", "no container mounts a volume named %q; add a volumeMount with name: %s", t.Name, t.Name)
		}
		seen[t.Name] = true
		v.labels(t.Labels, p+".metadata.labels")
		v.annotations(t.Annotations, p+".metadata.annotations")
		v.claimSpec(&t.Spec, p+".spec")
	}
	v.podSpec(s.PodSpecFor(&sp.Template.Spec, s.StartOrdinal()), "spec.template.spec")
	if rp := sp.Template.Spec.RestartPolicy; rp != "" && rp != RestartPolicyAlways {
		v.errf("spec.template.spec.restartPolicy", "a StatefulSet's pods must have restartPolicy Always, not %s", rp)
	}
	switch sp.PodManagementPolicy {
	case OrderedReadyPodManagement, ParallelPodManagement, "":
	default:
		v.errf("spec.podManagementPolicy", "%q is not one of OrderedReady, Parallel", sp.PodManagementPolicy)
	}
	switch sp.UpdateStrategy.Type {
	case RollingUpdateStatefulSetStrategyType:
		if ru := sp.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition < 0 {
			v.errf("spec.updateStrategy.rollingUpdate.partition", "must be 0 or more, is %d", *ru.Partition)
		}
	case OnDeleteStatefulSetStrategyType:
		if sp.UpdateStrategy.RollingUpdate != nil {
			v.errf("spec.updateStrategy.rollingUpdate", "may not be set when updateStrategy type is OnDelete")
		}
	case "":
	default:
		v.errf("spec.updateStrategy.type", "%q is not one of RollingUpdate, OnDelete", sp.UpdateStrategy.Type)
	}
	if r := sp.PersistentVolumeClaimRetentionPolicy; r != nil {
		for _, f := range []struct{ name, value string }{{"whenDeleted", r.WhenDeleted}, {"whenScaled", r.WhenScaled}} {
			if f.value != "" && f.value != RetainClaimRetention && f.value != DeleteClaimRetention {
				v.errf("spec.persistentVolumeClaimRetentionPolicy."+f.name, "%q is not one of Retain, Delete", f.value)
			}
		}
	}
}

// templateMounted reports whether a container of the pod mounts the
// volume.
func templateMounted(spec *PodSpec, volume string) bool {
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if slices.ContainsFunc(c.VolumeMounts, func(m VolumeMount) bool { return m.Name == volume }) {
			return true
		}
	}
	return false
}

func ptrValue[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
