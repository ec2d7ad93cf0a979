package manifests

// PodDisruptionBudget is a policy/v1 PodDisruptionBudget: a drain (shoal
// drain) evicts a pod it selects only while it allows one more disruption,
// as kubectl drain does through the eviction API. As in Kubernetes, rollouts
// and NoExecute taints do not consult it.
type PodDisruptionBudget struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       PodDisruptionBudgetSpec `json:"spec,omitempty"`
}

// PodDisruptionBudgetSpec bounds how many of the selected pods may be
// disrupted at once.
type PodDisruptionBudgetSpec struct {
	MinAvailable               *IntOrString   `json:"minAvailable,omitempty"`
	MaxUnavailable             *IntOrString   `json:"maxUnavailable,omitempty"`
	Selector                   *LabelSelector `json:"selector,omitempty"`
	UnhealthyPodEvictionPolicy string         `json:"unhealthyPodEvictionPolicy,omitempty"`
}

// DeepCopyObject returns a deep copy.
func (b *PodDisruptionBudget) DeepCopyObject() Object { return clone(b) }

func (v *validator) podDisruptionBudget(b *PodDisruptionBudget) {
	s := &b.Spec
	if s.MinAvailable != nil && s.MaxUnavailable != nil {
		v.errf("spec.minAvailable", "minAvailable and maxUnavailable may not both be set")
	}
	v.intOrPercent(s.MinAvailable, "spec.minAvailable", true)
	v.intOrPercent(s.MaxUnavailable, "spec.maxUnavailable", true)
	if s.Selector != nil {
		if _, err := SelectorFromLabelSelector(s.Selector); err != nil {
			v.errf("spec.selector", "%v", err)
		}
	}
	switch s.UnhealthyPodEvictionPolicy {
	case "", "IfHealthyBudget", "AlwaysAllow":
	default:
		v.errf("spec.unhealthyPodEvictionPolicy", "%q is not one of IfHealthyBudget, AlwaysAllow", s.UnhealthyPodEvictionPolicy)
	}
}
