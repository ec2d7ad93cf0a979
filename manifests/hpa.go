package manifests

import (
	"fmt"
	"strings"
)

// HorizontalPodAutoscaler is an autoscaling/v2 HorizontalPodAutoscaler: it
// sets the replicas of a Deployment or StatefulSet from its pods' CPU or
// memory usage. The replicas it sets are the autoscaler's, not git's: the
// target's spec.replicas is used only until the autoscaler has run.
type HorizontalPodAutoscaler struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       HorizontalPodAutoscalerSpec   `json:"spec"`
	Status     HorizontalPodAutoscalerStatus `json:"status,omitempty"`
}

// HorizontalPodAutoscalerSpec is what the autoscaler scales and by what.
type HorizontalPodAutoscalerSpec struct {
	ScaleTargetRef CrossVersionObjectReference      `json:"scaleTargetRef"`
	MinReplicas    *int32                           `json:"minReplicas,omitempty"`
	MaxReplicas    int32                            `json:"maxReplicas"`
	Metrics        []MetricSpec                     `json:"metrics,omitempty"`
	Behavior       *HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// CrossVersionObjectReference names the scaled workload.
type CrossVersionObjectReference struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// MetricSourceType is the kind of a metric; Shoal measures Resource
// metrics (CPU and memory of the pods).
type MetricSourceType string

// Metric source types.
const (
	ResourceMetricSourceType MetricSourceType = "Resource"
)

// MetricSpec is one metric the autoscaler follows.
type MetricSpec struct {
	Type     MetricSourceType      `json:"type"`
	Resource *ResourceMetricSource `json:"resource,omitempty"`
}

// ResourceMetricSource is a resource (cpu or memory) of the target's pods,
// averaged over them.
type ResourceMetricSource struct {
	Name   ResourceName `json:"name"`
	Target MetricTarget `json:"target"`
}

// MetricTargetType is Utilization (a percentage of the pods' requests),
// AverageValue (an amount per pod) or Value.
type MetricTargetType string

// Metric target types.
const (
	UtilizationMetricType  MetricTargetType = "Utilization"
	AverageValueMetricType MetricTargetType = "AverageValue"
	ValueMetricType        MetricTargetType = "Value"
)

// MetricTarget is the value the autoscaler keeps a metric at.
type MetricTarget struct {
	Type               MetricTargetType `json:"type"`
	Value              *Quantity        `json:"value,omitempty"`
	AverageValue       *Quantity        `json:"averageValue,omitempty"`
	AverageUtilization *int32           `json:"averageUtilization,omitempty"`
}

// HorizontalPodAutoscalerBehavior bounds how fast the autoscaler scales up
// and down.
type HorizontalPodAutoscalerBehavior struct {
	ScaleUp   *HPAScalingRules `json:"scaleUp,omitempty"`
	ScaleDown *HPAScalingRules `json:"scaleDown,omitempty"`
}

// ScalingPolicySelect picks among a direction's policies: Max (the most
// change), Min (the least) or Disabled (no change that way).
type ScalingPolicySelect string

// Scaling policy selections.
const (
	MaxChangePolicySelect ScalingPolicySelect = "Max"
	MinChangePolicySelect ScalingPolicySelect = "Min"
	DisabledPolicySelect  ScalingPolicySelect = "Disabled"
)

// HPAScalingRules are one direction's rules: the stabilization window over
// which recommendations are smoothed, and the policies that bound each
// change.
type HPAScalingRules struct {
	StabilizationWindowSeconds *int32               `json:"stabilizationWindowSeconds,omitempty"`
	SelectPolicy               *ScalingPolicySelect `json:"selectPolicy,omitempty"`
	Policies                   []HPAScalingPolicy   `json:"policies,omitempty"`
}

// HPAScalingPolicyType is Pods or Percent.
type HPAScalingPolicyType string

// Scaling policy types.
const (
	PodsScalingPolicy    HPAScalingPolicyType = "Pods"
	PercentScalingPolicy HPAScalingPolicyType = "Percent"
)

// HPAScalingPolicy allows a change of Value pods, or Value percent of the
// replicas, per PeriodSeconds.
type HPAScalingPolicy struct {
	Type          HPAScalingPolicyType `json:"type"`
	Value         int32                `json:"value"`
	PeriodSeconds int32                `json:"periodSeconds"`
}

// HorizontalPodAutoscalerStatus is the autoscaler's observed state.
type HorizontalPodAutoscalerStatus struct {
	ObservedGeneration *int64                             `json:"observedGeneration,omitempty"`
	LastScaleTime      *Time                              `json:"lastScaleTime,omitempty"`
	CurrentReplicas    int32                              `json:"currentReplicas"`
	DesiredReplicas    int32                              `json:"desiredReplicas"`
	CurrentMetrics     []MetricStatus                     `json:"currentMetrics,omitempty"`
	Conditions         []HorizontalPodAutoscalerCondition `json:"conditions,omitempty"`
}

// MetricStatus is a metric's current value.
type MetricStatus struct {
	Type     MetricSourceType      `json:"type"`
	Resource *ResourceMetricStatus `json:"resource,omitempty"`
}

// ResourceMetricStatus is a resource metric's current value.
type ResourceMetricStatus struct {
	Name    ResourceName      `json:"name"`
	Current MetricValueStatus `json:"current"`
}

// MetricValueStatus is a metric's value as a percentage of the requests and
// as an amount per pod.
type MetricValueStatus struct {
	AverageValue       *Quantity `json:"averageValue,omitempty"`
	AverageUtilization *int32    `json:"averageUtilization,omitempty"`
}

// HorizontalPodAutoscalerCondition is one of the autoscaler's conditions:
// AbleToScale, ScalingActive, ScalingLimited.
type HorizontalPodAutoscalerCondition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	LastTransitionTime Time            `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// Defaults of an autoscaler, as Kubernetes sets them.
const (
	DefaultHPACPUUtilization      = 80
	DefaultScaleDownStabilization = 300
	DefaultHPATolerance           = 0.1
)

// DeepCopyObject returns an independent copy.
func (h *HorizontalPodAutoscaler) DeepCopyObject() Object { return clone(h) }

func defaultHPA(h *HorizontalPodAutoscaler) {
	s := &h.Spec
	if s.MinReplicas == nil {
		s.MinReplicas = ptr[int32](1)
	}
	if len(s.Metrics) == 0 {
		s.Metrics = []MetricSpec{{Type: ResourceMetricSourceType, Resource: &ResourceMetricSource{Name: ResourceCPU,
			Target: MetricTarget{Type: UtilizationMetricType, AverageUtilization: ptr[int32](DefaultHPACPUUtilization)}}}}
	}
	if s.Behavior == nil {
		s.Behavior = &HorizontalPodAutoscalerBehavior{}
	}
	if s.Behavior.ScaleUp == nil {
		s.Behavior.ScaleUp = &HPAScalingRules{}
	}
	if s.Behavior.ScaleDown == nil {
		s.Behavior.ScaleDown = &HPAScalingRules{}
	}
	up, down := s.Behavior.ScaleUp, s.Behavior.ScaleDown
	if up.StabilizationWindowSeconds == nil {
		up.StabilizationWindowSeconds = ptr[int32](0)
	}
	if down.StabilizationWindowSeconds == nil {
		down.StabilizationWindowSeconds = ptr[int32](DefaultScaleDownStabilization)
	}
	for _, r := range []*HPAScalingRules{up, down} {
		if r.SelectPolicy == nil {
			r.SelectPolicy = ptr(MaxChangePolicySelect)
		}
	}
	if len(up.Policies) == 0 {
		up.Policies = []HPAScalingPolicy{{Type: PodsScalingPolicy, Value: 4, PeriodSeconds: 15}, {Type: PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}
	}
	if len(down.Policies) == 0 {
		down.Policies = []HPAScalingPolicy{{Type: PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}
	}
}

func (v *validator) hpa(h *HorizontalPodAutoscaler) {
	s := &h.Spec
	ref := s.ScaleTargetRef
	switch {
	case ref.Name == "":
		v.errf("spec.scaleTargetRef.name", "required; name the Deployment or StatefulSet to scale")
	case ref.Kind != "Deployment" && ref.Kind != "StatefulSet":
		v.errf("spec.scaleTargetRef.kind", "%q: Shoal scales a Deployment or a StatefulSet", ref.Kind)
	case ref.APIVersion != "" && ref.APIVersion != "apps/v1":
		v.errf("spec.scaleTargetRef.apiVersion", "%q: a %s is apps/v1", ref.APIVersion, ref.Kind)
	}
	min := int32(1)
	if s.MinReplicas != nil {
		min = *s.MinReplicas
		if min < 1 {
			v.errf("spec.minReplicas", "must be 1 or more, is %d (scaling to zero is an alpha feature of Kubernetes)", min)
		}
	}
	switch {
	case s.MaxReplicas < 1:
		v.errf("spec.maxReplicas", "required, 1 or more; the most replicas the autoscaler may set")
	case s.MaxReplicas < min:
		v.errf("spec.maxReplicas", "must be at least minReplicas (%d), is %d", min, s.MaxReplicas)
	}
	seen := map[ResourceName]bool{}
	for i, m := range s.Metrics {
		p := idx("spec.metrics", i)
		switch m.Type {
		case ResourceMetricSourceType:
		case "Pods", "Object", "External", "ContainerResource":
			v.errf(p+".type", "%s metrics are %s: Shoal measures the pods' cpu and memory (type: Resource)", m.Type, notYet)
			continue
		default:
			v.errf(p+".type", "%q is not one of Resource, Pods, Object, External, ContainerResource", m.Type)
			continue
		}
		r := m.Resource
		if r == nil {
			v.errf(p+".resource", "required for type Resource")
			continue
		}
		if r.Name != ResourceCPU && r.Name != ResourceMemory {
			v.errf(p+".resource.name", "%q: Shoal measures cpu and memory", r.Name)
		}
		if seen[r.Name] {
			v.errf(p+".resource.name", "%s is given twice", r.Name)
		}
		seen[r.Name] = true
		t := r.Target
		tp := p + ".resource.target"
		switch t.Type {
		case UtilizationMetricType:
			if t.AverageUtilization == nil || *t.AverageUtilization < 1 {
				v.errf(tp+".averageUtilization", "required for type Utilization, a percentage of the pods' requests of 1 or more")
			}
		case AverageValueMetricType:
			if t.AverageValue == nil || t.AverageValue.rat().Sign() <= 0 {
				v.errf(tp+".averageValue", "required for type AverageValue, more than 0")
			}
		case ValueMetricType:
			v.errf(tp+".type", "Value targets apply to Object and External metrics; for a resource use Utilization or AverageValue")
		default:
			v.errf(tp+".type", "%q is not one of Utilization, AverageValue, Value", t.Type)
		}
	}
	if b := s.Behavior; b != nil {
		for _, d := range []struct {
			name  string
			rules *HPAScalingRules
		}{{"scaleUp", b.ScaleUp}, {"scaleDown", b.ScaleDown}} {
			r := d.rules
			if r == nil {
				continue
			}
			p := "spec.behavior." + d.name
			if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
				v.errf(p+".stabilizationWindowSeconds", "must be from 0 to 3600, is %d", *w)
			}
			if sp := r.SelectPolicy; sp != nil && *sp != MaxChangePolicySelect && *sp != MinChangePolicySelect && *sp != DisabledPolicySelect {
				v.errf(p+".selectPolicy", "%q is not one of Max, Min, Disabled", *sp)
			}
			for i, pol := range r.Policies {
				pp := idx(p+".policies", i)
				if pol.Type != PodsScalingPolicy && pol.Type != PercentScalingPolicy {
					v.errf(pp+".type", "%q is not one of Pods, Percent", pol.Type)
				}
				if pol.Value < 1 {
					v.errf(pp+".value", "must be 1 or more, is %d", pol.Value)
				}
				if pol.PeriodSeconds < 1 || pol.PeriodSeconds > 1800 {
					v.errf(pp+".periodSeconds", "must be from 1 to 1800, is %d", pol.PeriodSeconds)
				}
			}
		}
	}
}

// MetricsText renders the autoscaler's metrics as kubectl get hpa does: "cpu: 40%/50%",
// "<unknown>" for a metric with no value yet.
func (h *HorizontalPodAutoscaler) MetricsText(current []MetricStatus) string {
	var parts []string
	for _, m := range h.Spec.Metrics {
		if m.Resource == nil {
			continue
		}
		r := m.Resource
		cur := "<unknown>"
		for _, c := range current {
			if c.Resource == nil || c.Resource.Name != r.Name {
				continue
			}
			if r.Target.Type == UtilizationMetricType && c.Resource.Current.AverageUtilization != nil {
				cur = fmt.Sprintf("%d%%", *c.Resource.Current.AverageUtilization)
			} else if c.Resource.Current.AverageValue != nil {
				cur = c.Resource.Current.AverageValue.String()
			}
		}
		target := ""
		switch {
		case r.Target.Type == UtilizationMetricType && r.Target.AverageUtilization != nil:
			target = fmt.Sprintf("%d%%", *r.Target.AverageUtilization)
		case r.Target.AverageValue != nil:
			target = r.Target.AverageValue.String()
		}
		parts = append(parts, fmt.Sprintf("%s: %s/%s", r.Name, cur, target))
	}
	return strings.Join(parts, ", ")
}
