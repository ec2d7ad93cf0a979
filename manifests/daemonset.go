package manifests

// DaemonSet is an apps/v1 DaemonSet: one pod on every node that matches.
type DaemonSet struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       DaemonSetSpec   `json:"spec,omitempty"`
	Status     DaemonSetStatus `json:"status,omitempty"`
}

// DaemonSetSpec is the desired state of a DaemonSet.
type DaemonSetSpec struct {
	Selector             *LabelSelector          `json:"selector"`
	Template             PodTemplateSpec         `json:"template"`
	UpdateStrategy       DaemonSetUpdateStrategy `json:"updateStrategy,omitempty"`
	MinReadySeconds      int32                   `json:"minReadySeconds,omitempty"`
	RevisionHistoryLimit *int32                  `json:"revisionHistoryLimit,omitempty"`
}

// DaemonSetUpdateStrategyType is RollingUpdate or OnDelete.
type DaemonSetUpdateStrategyType string

// DaemonSet update strategies.
const (
	RollingUpdateDaemonSetStrategyType DaemonSetUpdateStrategyType = "RollingUpdate"
	OnDeleteDaemonSetStrategyType      DaemonSetUpdateStrategyType = "OnDelete"
)

// DaemonSetUpdateStrategy is how a DaemonSet replaces its pods when its
// template changes.
type DaemonSetUpdateStrategy struct {
	Type          DaemonSetUpdateStrategyType `json:"type,omitempty"`
	RollingUpdate *RollingUpdateDaemonSet     `json:"rollingUpdate,omitempty"`
}

// RollingUpdateDaemonSet bounds a DaemonSet's rolling update: how many
// nodes may lack an available pod, and on how many an old and a new pod may
// run side by side (counts, or percentages of the nodes that run it).
type RollingUpdateDaemonSet struct {
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
	MaxSurge       *IntOrString `json:"maxSurge,omitempty"`
}

// DaemonSetStatus is a DaemonSet's observed state.
type DaemonSetStatus struct {
	CurrentNumberScheduled int32 `json:"currentNumberScheduled"`
	NumberMisscheduled     int32 `json:"numberMisscheduled"`
	DesiredNumberScheduled int32 `json:"desiredNumberScheduled"`
	NumberReady            int32 `json:"numberReady"`
	ObservedGeneration     int64 `json:"observedGeneration,omitempty"`
	UpdatedNumberScheduled int32 `json:"updatedNumberScheduled,omitempty"`
	NumberAvailable        int32 `json:"numberAvailable,omitempty"`
	NumberUnavailable      int32 `json:"numberUnavailable,omitempty"`
}

// Defaults of a DaemonSet's rolling update.
const (
	DefaultDaemonSetMaxUnavailable = 1
	DefaultDaemonSetMaxSurge       = 0
)

// DeepCopyObject returns an independent copy of the daemon set.
func (d *DaemonSet) DeepCopyObject() Object { return clone(d) }

func defaultDaemonSet(d *DaemonSet) {
	s := &d.Spec
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = RollingUpdateDaemonSetStrategyType
	}
	if s.UpdateStrategy.Type == RollingUpdateDaemonSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &RollingUpdateDaemonSet{}
		}
		ru := s.UpdateStrategy.RollingUpdate
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = ptr(FromInt(DefaultDaemonSetMaxUnavailable))
		}
		if ru.MaxSurge == nil {
			ru.MaxSurge = ptr(FromInt(DefaultDaemonSetMaxSurge))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptr[int32](DefaultRevisionHistoryLimit)
	}
	defaultPodSpec(&s.Template.Spec)
}

func (v *validator) daemonSet(d *DaemonSet) {
	s := &d.Spec
	if s.MinReadySeconds < 0 {
		v.errf("spec.minReadySeconds", "must be 0 or more, is %d", s.MinReadySeconds)
	}
	if s.RevisionHistoryLimit != nil && *s.RevisionHistoryLimit < 0 {
		v.errf("spec.revisionHistoryLimit", "must be 0 or more, is %d", *s.RevisionHistoryLimit)
	}
	v.podSelector(s.Selector, s.Template.Labels, d.Name)
	v.labels(s.Template.Labels, "spec.template.metadata.labels")
	v.annotations(s.Template.Annotations, "spec.template.metadata.annotations")
	v.podSpec(&s.Template.Spec, "spec.template.spec")
	if rp := s.Template.Spec.RestartPolicy; rp != "" && rp != RestartPolicyAlways {
		v.errf("spec.template.spec.restartPolicy", "a DaemonSet's pods must have restartPolicy Always, not %s", rp)
	}
	switch s.UpdateStrategy.Type {
	case RollingUpdateDaemonSetStrategyType:
		if ru := s.UpdateStrategy.RollingUpdate; ru != nil {
			surge := v.intOrPercent(ru.MaxSurge, "spec.updateStrategy.rollingUpdate.maxSurge", true)
			unavail := v.intOrPercent(ru.MaxUnavailable, "spec.updateStrategy.rollingUpdate.maxUnavailable", true)
			if surge == 0 && unavail == 0 {
				v.errf("spec.updateStrategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0; the rollout could never make progress")
			}
		}
	case OnDeleteDaemonSetStrategyType:
		if s.UpdateStrategy.RollingUpdate != nil {
			v.errf("spec.updateStrategy.rollingUpdate", "may not be set when updateStrategy type is OnDelete")
		}
	case "":
	default:
		v.errf("spec.updateStrategy.type", "%q is not one of RollingUpdate, OnDelete", s.UpdateStrategy.Type)
	}
}
