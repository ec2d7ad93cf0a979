package reconcile

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// Autoscaling constants, Kubernetes' defaults.
const (
	// HPASyncPeriod is how often an autoscaler recomputes its replicas
	// (kube-controller-manager's --horizontal-pod-autoscaler-sync-period).
	HPASyncPeriod = 15 * time.Second
	// hpaTolerance is the ratio to the target within which no scaling is
	// done.
	hpaTolerance = manifests.DefaultHPATolerance
	// MetricsMaxAge is how old a pod's usage sample may be and still count.
	MetricsMaxAge = 2 * time.Minute
)

// PodUsage is a pod's CPU (millicores, averaged over Window) and memory
// (working set bytes) as its node measured them at Timestamp.
type PodUsage struct {
	MilliCPU  int64
	Memory    int64
	Timestamp time.Time
}

// HPARecommendation is the replicas an autoscaler computed at a time,
// kept for the stabilization windows.
type HPARecommendation struct {
	Time     time.Time `json:"time"`
	Replicas int32     `json:"replicas"`
}

// HPAScaleEvent is a change an autoscaler made, kept for the rate limits
// of its behavior policies.
type HPAScaleEvent struct {
	Time   time.Time `json:"time"`
	Change int32     `json:"change"` // positive: scaled up
}

// HPAStatus is an autoscaler's status as it will be once the plan is
// applied, with what it keeps from one evaluation to the next.
type HPAStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Target is the Pod.Owner of the scaled workload's pods.
	Target string `json:"target"`
	// Evaluated is when the replicas were last computed; they are computed
	// again HPASyncPeriod later.
	Evaluated       time.Time           `json:"evaluated"`
	Recommendations []HPARecommendation `json:"recommendations,omitempty"`
	ScaleEvents     []HPAScaleEvent     `json:"scaleEvents,omitempty"`
	manifests.HorizontalPodAutoscalerStatus
}

// hpaTarget is a workload an autoscaler may scale.
type hpaTarget struct {
	owner    string
	replicas int32 // spec.replicas in git
	spec     *manifests.PodSpec
	set      func(int32)
}

// autoscale evaluates the autoscalers and sets the replicas of their
// targets in the plan: deployments and statefulSets are replaced by copies
// with the autoscalers' replicas. An autoscaler that cannot compute its
// replicas (no metrics, no target) leaves them as they were, and says why
// in its conditions.
func (p *planner) autoscale(hpas []*manifests.HorizontalPodAutoscaler, deployments []*manifests.Deployment,
	sets []*manifests.StatefulSet, owned map[string][]*Pod) {
	if len(hpas) == 0 {
		return
	}
	targets := map[string]*hpaTarget{}
	for i, d := range deployments {
		replicas := int32(deploymentReplicas(d))
		targets["Deployment/"+d.Namespace+"/"+d.Name] = &hpaTarget{owner: DeploymentOwner(d.Namespace, d.Name), replicas: replicas,
			spec: &d.Spec.Template.Spec, set: func(n int32) {
				dc := *d
				dc.Spec.Replicas = &n
				deployments[i] = &dc
			}}
	}
	for i, s := range sets {
		targets["StatefulSet/"+s.Namespace+"/"+s.Name] = &hpaTarget{owner: StatefulSetOwner(s.Namespace, s.Name), replicas: *s.Spec.Replicas,
			spec: &s.Spec.Template.Spec, set: func(n int32) {
				sc := *s
				sc.Spec.Replicas = &n
				sets[i] = &sc
			}}
	}
	scaled := map[string]bool{}
	for _, h := range hpas {
		key := h.Spec.ScaleTargetRef.Kind + "/" + h.Namespace + "/" + h.Spec.ScaleTargetRef.Name
		t := targets[key]
		st := p.evaluateHPA(h, t, owned, scaled[key])
		if t != nil && !scaled[key] && st.DesiredReplicas > 0 {
			t.set(st.DesiredReplicas)
			scaled[key] = true
		}
		p.plan.Autoscalers = append(p.plan.Autoscalers, st)
	}
}

// evaluateHPA computes one autoscaler's replicas, as Kubernetes'
// horizontal pod autoscaler controller does.
func (p *planner) evaluateHPA(h *manifests.HorizontalPodAutoscaler, t *hpaTarget, owned map[string][]*Pod, taken bool) HPAStatus {
	key := ClaimKey(h.Namespace, h.Name)
	object := "HorizontalPodAutoscaler/" + key
	prev, had := p.s.Autoscalers[key]
	ref := h.Spec.ScaleTargetRef
	st := HPAStatus{Namespace: h.Namespace, Name: h.Name}
	if had {
		st = prev
		st.Conditions = slices.Clone(prev.Conditions)
	}
	var conds []manifests.HorizontalPodAutoscalerCondition
	setCond := func(typ string, status manifests.ConditionStatus, reason, msg string) {
		conds = append(conds, manifests.HorizontalPodAutoscalerCondition{Type: typ, Status: status, Reason: reason, Message: msg})
	}
	finish := func() HPAStatus {
		st.Conditions = mergeHPAConditions(st.Conditions, conds, p.s.Now)
		return st
	}
	if t == nil {
		st.Target, st.DesiredReplicas, st.CurrentReplicas, st.CurrentMetrics = "", 0, 0, nil
		setCond("AbleToScale", manifests.ConditionFalse, "FailedGetScale",
			fmt.Sprintf("the HPA controller was unable to get the target's current scale: %s %q not found in this commit", strings.ToLower(ref.Kind), ref.Name))
		p.eventOnce(had && prev.Target == "", object, EventWarning, "FailedGetScale", conds[0].Message)
		return finish()
	}
	if taken {
		setCond("AbleToScale", manifests.ConditionFalse, "AmbiguousSelector",
			fmt.Sprintf("another HorizontalPodAutoscaler scales %s %s; remove one of them", strings.ToLower(ref.Kind), ref.Name))
		st.DesiredReplicas = 0
		return finish()
	}
	// The current scale: the replicas the autoscaler set, else git's.
	current := t.replicas
	if had && prev.Target == t.owner && prev.DesiredReplicas > 0 {
		current = prev.DesiredReplicas
	}
	if st.Target != t.owner {
		st.Recommendations, st.ScaleEvents, st.Evaluated = nil, nil, time.Time{}
	}
	st.Target = t.owner
	st.CurrentReplicas = current
	sync := p.s.AutoscalerSync
	if sync <= 0 {
		sync = HPASyncPeriod
	}
	if left := sync - p.s.Now.Sub(st.Evaluated); !st.Evaluated.IsZero() && left > 0 && st.DesiredReplicas > 0 {
		// Not yet time to compute again: keep the replicas.
		p.requeue(left)
		st.DesiredReplicas = current
		return st
	}
	p.requeue(sync)
	st.Evaluated = p.s.Now
	if current == 0 {
		st.DesiredReplicas = 0
		setCond("ScalingActive", manifests.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
		return finish()
	}
	pods := activePods(owned[t.owner])
	proposal, metricsStatus, reason, err := p.replicasForMetrics(h, t, pods, current)
	st.CurrentMetrics = metricsStatus
	if err != nil {
		st.DesiredReplicas = current
		setCond("AbleToScale", manifests.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale")
		setCond("ScalingActive", manifests.ConditionFalse, "FailedGetResourceMetric", err.Error())
		p.eventOnce(hpaCondReason(prev, "ScalingActive") == "FailedGetResourceMetric", object, EventWarning, "FailedGetResourceMetric", err.Error())
		return finish()
	}
	setCond("ScalingActive", manifests.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from "+reason)
	desired, limitReason, limitMsg := p.normalizeHPA(h, &st, current, proposal)
	if limitReason != "" {
		setCond("ScalingLimited", manifests.ConditionTrue, limitReason, limitMsg)
	} else {
		setCond("ScalingLimited", manifests.ConditionFalse, "DesiredWithinRange", "the desired count is within the acceptable range")
	}
	if desired != current {
		setCond("AbleToScale", manifests.ConditionTrue, "SucceededRescale", fmt.Sprintf("the HPA controller was able to update the target scale to %d", desired))
		now := manifests.NewTime(p.s.Now)
		st.LastScaleTime = &now
		st.ScaleEvents = append(st.ScaleEvents, HPAScaleEvent{Time: p.s.Now, Change: desired - current})
		dir := "above"
		if desired < current {
			dir = "below"
		}
		p.event(object, EventNormal, "SuccessfulRescale", fmt.Sprintf("New size: %d; reason: %s %s target", desired, reason, dir))
	} else {
		setCond("AbleToScale", manifests.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	st.ScaleEvents = keepScaleEvents(h, st.ScaleEvents, p.s.Now)
	st.DesiredReplicas = desired
	return finish()
}

// eventOnce records an event unless the same condition was already
// reported.
func (p *planner) eventOnce(reported bool, object, typ, reason, msg string) {
	if !reported {
		p.event(object, typ, reason, msg)
	}
}

func hpaCondReason(st HPAStatus, typ string) string {
	for _, c := range st.Conditions {
		if c.Type == typ && c.Status == manifests.ConditionFalse {
			return c.Reason
		}
	}
	return ""
}

// mergeHPAConditions sets the conditions, keeping the transition time of
// those whose status did not change.
func mergeHPAConditions(old, set []manifests.HorizontalPodAutoscalerCondition, now time.Time) []manifests.HorizontalPodAutoscalerCondition {
	out := slices.Clone(old)
	for _, c := range set {
		i := slices.IndexFunc(out, func(o manifests.HorizontalPodAutoscalerCondition) bool { return o.Type == c.Type })
		switch {
		case i < 0:
			c.LastTransitionTime = manifests.NewTime(now)
			out = append(out, c)
		case out[i].Status != c.Status:
			c.LastTransitionTime = manifests.NewTime(now)
			out[i] = c
		default:
			c.LastTransitionTime = out[i].LastTransitionTime
			out[i] = c
		}
	}
	order := map[string]int{"AbleToScale": 0, "ScalingActive": 1, "ScalingLimited": 2}
	slices.SortStableFunc(out, func(a, b manifests.HorizontalPodAutoscalerCondition) int { return order[a.Type] - order[b.Type] })
	return out
}

// activePods are the pods an autoscaler counts: neither deleted nor ended.
func activePods(pods []*Pod) []*Pod {
	var out []*Pod
	for _, pod := range pods {
		if pod.Terminating || pod.Phase == manifests.PodFailed || pod.Phase == manifests.PodSucceeded || pod.Spec == nil {
			continue
		}
		out = append(out, pod)
	}
	return out
}

// replicasForMetrics is the largest of the replicas the metrics propose,
// with the metrics' current values and the reason of the proposal.
func (p *planner) replicasForMetrics(h *manifests.HorizontalPodAutoscaler, t *hpaTarget, pods []*Pod, current int32) (int32, []manifests.MetricStatus, string, error) {
	var proposal int32
	var statuses []manifests.MetricStatus
	var reason string
	var firstErr error
	for _, m := range h.Spec.Metrics {
		if m.Type != manifests.ResourceMetricSourceType || m.Resource == nil {
			continue
		}
		n, ms, err := p.resourceReplicas(m.Resource, pods, current)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		statuses = append(statuses, ms)
		if n > proposal || reason == "" {
			proposal = max(proposal, n)
			reason = metricReason(m.Resource)
		}
	}
	if reason == "" {
		if firstErr == nil {
			firstErr = fmt.Errorf("the HPA has no metric it can compute")
		}
		return 0, statuses, "", firstErr
	}
	return proposal, statuses, reason, nil
}

func metricReason(r *manifests.ResourceMetricSource) string {
	if r.Target.Type == manifests.UtilizationMetricType {
		return string(r.Name) + " resource utilization (percentage of request)"
	}
	return string(r.Name) + " resource"
}

// resourceReplicas is the replicas one resource metric proposes, with
// Kubernetes' handling of pods without metrics and of unready pods: when
// scaling up, pods without a sample and (for cpu) pods not yet Ready count
// as using nothing; when scaling down, pods without a sample count as using
// exactly the target; if that reverses the direction or brings the ratio
// within the tolerance, the replicas stay.
func (p *planner) resourceReplicas(r *manifests.ResourceMetricSource, pods []*Pod, current int32) (int32, manifests.MetricStatus, error) {
	name := r.Name
	utilization := r.Target.Type == manifests.UtilizationMetricType
	var target float64 // per pod: a percentage of the request, or an amount
	if utilization {
		target = float64(*r.Target.AverageUtilization)
	} else {
		target = float64(quantityOf(name, *r.Target.AverageValue))
	}
	type sample struct {
		usage, request int64
	}
	ready := map[string]sample{}
	var missing, unready []string
	requests := map[string]int64{}
	for _, pod := range pods {
		var req int64
		for i := range pod.Spec.Spec.Containers {
			c := &pod.Spec.Spec.Containers[i]
			cr := containerRequest(c)
			v := cr.MilliCPU
			if name == manifests.ResourceMemory {
				v = cr.Memory
			}
			if v == 0 && utilization {
				return 0, manifests.MetricStatus{}, fmt.Errorf("failed to get %s utilization: missing request for %s in container %s of Pod %s", name, name, c.Name, pod.Name)
			}
			req += v
		}
		requests[pod.UID] = req
		u, ok := p.s.PodMetrics[pod.UID]
		switch {
		case !ok || p.s.Now.Sub(u.Timestamp) > MetricsMaxAge:
			missing = append(missing, pod.UID)
		case name == manifests.ResourceCPU && !p.podReady(pod):
			unready = append(unready, pod.UID)
		default:
			v := u.MilliCPU
			if name == manifests.ResourceMemory {
				v = u.Memory
			}
			ready[pod.UID] = sample{v, req}
		}
	}
	if len(ready) == 0 {
		return 0, manifests.MetricStatus{}, fmt.Errorf("failed to get %s utilization: unable to get metrics for resource %s: no metrics returned from the nodes", name, name)
	}
	ratioOf := func(samples map[string]sample) (float64, float64) {
		var usage, req int64
		for _, s := range samples {
			usage += s.usage
			req += s.request
		}
		if utilization {
			if req == 0 {
				return 0, 0
			}
			cur := float64(usage) * 100 / float64(req)
			return cur / target, cur
		}
		cur := float64(usage) / float64(len(samples))
		return cur / target, cur
	}
	ratio, cur := ratioOf(ready)
	status := manifests.MetricStatus{Type: manifests.ResourceMetricSourceType, Resource: &manifests.ResourceMetricStatus{Name: name}}
	var usageSum int64
	for _, s := range ready {
		usageSum += s.usage
	}
	avg := manifests.NewQuantity(usageSum / int64(len(ready)))
	if name == manifests.ResourceCPU {
		avg = manifests.NewMilliQuantity(usageSum / int64(len(ready)))
	}
	status.Resource.Current.AverageValue = &avg
	if utilization {
		u := int32(math.Round(cur))
		status.Resource.Current.AverageUtilization = &u
	}

	scaleUpWithUnready := len(unready) > 0 && ratio > 1
	if !scaleUpWithUnready && len(missing) == 0 {
		if math.Abs(1-ratio) <= hpaTolerance {
			return current, status, nil
		}
		return int32(math.Ceil(ratio * float64(len(ready)))), status, nil
	}
	all := make(map[string]sample, len(ready)+len(missing)+len(unready))
	for k, v := range ready {
		all[k] = v
	}
	for _, uid := range missing {
		req := requests[uid]
		if ratio < 1 {
			// Scaling down: a pod without a sample is taken to use the target.
			if utilization {
				all[uid] = sample{int64(target * float64(req) / 100), req}
			} else {
				all[uid] = sample{int64(target), req}
			}
		} else {
			all[uid] = sample{0, req}
		}
	}
	if scaleUpWithUnready {
		for _, uid := range unready {
			all[uid] = sample{0, requests[uid]}
		}
	}
	newRatio, _ := ratioOf(all)
	if math.Abs(1-newRatio) <= hpaTolerance || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return current, status, nil
	}
	n := int32(math.Ceil(newRatio * float64(len(all))))
	if (newRatio < 1 && n > current) || (newRatio > 1 && n < current) {
		return current, status, nil
	}
	return n, status, nil
}

// quantityOf is a target amount in the unit usage is measured in:
// millicores for cpu, bytes for memory.
func quantityOf(name manifests.ResourceName, q manifests.Quantity) int64 {
	if name == manifests.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// normalizeHPA applies the stabilization windows, the behavior policies'
// rate limits and the replica bounds to a proposal, as Kubernetes does, and
// records the proposal. It returns the replicas and, when a limit cut the
// proposal, the ScalingLimited reason and message.
func (p *planner) normalizeHPA(h *manifests.HorizontalPodAutoscaler, st *HPAStatus, current, proposal int32) (int32, string, string) {
	b := h.Spec.Behavior
	up, down := b.ScaleUp, b.ScaleDown
	upWindow := time.Duration(*up.StabilizationWindowSeconds) * time.Second
	downWindow := time.Duration(*down.StabilizationWindowSeconds) * time.Second
	upRec, downRec := proposal, proposal
	var keep []HPARecommendation
	for _, r := range st.Recommendations {
		age := p.s.Now.Sub(r.Time)
		if age < upWindow {
			upRec = min(upRec, r.Replicas)
		}
		if age < downWindow {
			downRec = max(downRec, r.Replicas)
		}
		if age < max(upWindow, downWindow) {
			keep = append(keep, r)
		}
	}
	st.Recommendations = append(keep, HPARecommendation{Time: p.s.Now, Replicas: proposal})
	desired := current
	if desired < upRec {
		desired = upRec
	}
	if desired > downRec {
		desired = downRec
	}
	var reason, msg string
	switch {
	case desired > current:
		limit := scaleUpLimit(up, st.ScaleEvents, current, p.s.Now)
		if limit < current {
			limit = current
		}
		if desired > limit {
			desired, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
	case desired < current:
		limit := scaleDownLimit(down, st.ScaleEvents, current, p.s.Now)
		if limit > current {
			limit = current
		}
		if desired < limit {
			desired, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
	}
	minR := *h.Spec.MinReplicas
	switch {
	case desired > h.Spec.MaxReplicas:
		desired, reason, msg = h.Spec.MaxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	case desired < minR:
		desired, reason, msg = minR, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
	}
	return desired, reason, msg
}

// scaleUpLimit is the most replicas the scale-up policies allow now.
func scaleUpLimit(r *manifests.HPAScalingRules, events []HPAScaleEvent, current int32, now time.Time) int32 {
	if *r.SelectPolicy == manifests.DisabledPolicySelect {
		return current
	}
	result := int32(math.MinInt32)
	if *r.SelectPolicy == manifests.MinChangePolicySelect {
		result = math.MaxInt32
	}
	for _, pol := range r.Policies {
		var added int32
		for _, e := range events {
			if e.Change > 0 && now.Sub(e.Time) < time.Duration(pol.PeriodSeconds)*time.Second {
				added += e.Change
			}
		}
		start := current - added
		var proposed int32
		if pol.Type == manifests.PodsScalingPolicy {
			proposed = start + pol.Value
		} else {
			proposed = int32(math.Ceil(float64(start) * (1 + float64(pol.Value)/100)))
		}
		if *r.SelectPolicy == manifests.MinChangePolicySelect {
			result = min(result, proposed)
		} else {
			result = max(result, proposed)
		}
	}
	return result
}

// scaleDownLimit is the fewest replicas the scale-down policies allow now.
func scaleDownLimit(r *manifests.HPAScalingRules, events []HPAScaleEvent, current int32, now time.Time) int32 {
	if *r.SelectPolicy == manifests.DisabledPolicySelect {
		return current
	}
	result := int32(math.MaxInt32)
	if *r.SelectPolicy == manifests.MinChangePolicySelect {
		result = math.MinInt32
	}
	for _, pol := range r.Policies {
		var removed int32
		for _, e := range events {
			if e.Change < 0 && now.Sub(e.Time) < time.Duration(pol.PeriodSeconds)*time.Second {
				removed -= e.Change
			}
		}
		start := current + removed
		var proposed int32
		if pol.Type == manifests.PodsScalingPolicy {
			proposed = start - pol.Value
		} else {
			proposed = int32(float64(start) * (1 - float64(pol.Value)/100))
		}
		if *r.SelectPolicy == manifests.MinChangePolicySelect {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// keepScaleEvents drops the scale events older than the longest policy
// period, which no limit looks at any more.
func keepScaleEvents(h *manifests.HorizontalPodAutoscaler, events []HPAScaleEvent, now time.Time) []HPAScaleEvent {
	var longest int32
	for _, r := range []*manifests.HPAScalingRules{h.Spec.Behavior.ScaleUp, h.Spec.Behavior.ScaleDown} {
		for _, pol := range r.Policies {
			longest = max(longest, pol.PeriodSeconds)
		}
	}
	return slices.DeleteFunc(events, func(e HPAScaleEvent) bool { return now.Sub(e.Time) >= time.Duration(longest)*time.Second })
}
