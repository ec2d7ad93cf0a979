package reconcile

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// RolloutBounds resolves a Deployment's maxSurge and maxUnavailable against
// its replicas as Kubernetes does: surge rounds up, unavailable rounds down,
// unavailable is at most replicas, and when both come out 0 unavailable
// becomes 1 so the rollout can progress. Recreate Deployments have no
// surge and no unavailability budget.
func RolloutBounds(d *manifests.Deployment) (surge, unavailable int) {
	replicas := deploymentReplicas(d)
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type == manifests.RecreateDeploymentStrategyType {
		return 0, 0
	}
	s, u := manifests.FromString(manifests.DefaultMaxSurge), manifests.FromString(manifests.DefaultMaxUnavailable)
	if ru != nil && ru.MaxSurge != nil {
		s = *ru.MaxSurge
	}
	if ru != nil && ru.MaxUnavailable != nil {
		u = *ru.MaxUnavailable
	}
	// Validation refuses malformed values; treat them as 0 if they come.
	surge, _ = s.ScaledValue(replicas, true)
	unavailable, _ = u.ScaledValue(replicas, false)
	surge, unavailable = max(surge, 0), max(unavailable, 0)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, min(unavailable, replicas)
}

func deploymentReplicas(d *manifests.Deployment) int {
	if d.Spec.Replicas == nil {
		return manifests.DefaultReplicas
	}
	return max(int(*d.Spec.Replicas), 0)
}

// rollout is one Deployment's pods, sorted into what the controller needs.
type rollout struct {
	d        *manifests.Deployment
	owner    string
	hash     string
	replicas int
	minReady time.Duration

	newPods, oldPods []*Pod // active (not terminating, not lost, not ended)
	newTerm, oldTerm int    // terminating, including ended pods deleted now
	created          int
	deleted          map[*Pod]bool
}

// deployment plans one Deployment: scale its current revision, replace old
// revisions by its strategy, and report its status.
func (p *planner) deployment(d *manifests.Deployment, pods []*Pod) {
	r := &rollout{
		d:        d,
		owner:    DeploymentOwner(d.Namespace, d.Name),
		hash:     TemplateHash(&d.Spec.Template),
		replicas: deploymentReplicas(d),
		minReady: time.Duration(d.Spec.MinReadySeconds) * time.Second,
		deleted:  make(map[*Pod]bool),
	}
	paused := d.Spec.Paused
	for _, pod := range pods {
		isNew := pod.TemplateHash == r.hash
		switch {
		case p.nodeLost(pod):
			// The node lifecycle, not the rollout: pods of a lost node are
			// gone even for a paused Deployment.
			p.delete(pod, DeleteNodeLost, r.owner)
		case pod.Terminating && pod.Node == "":
			// Unbound: no node will confirm the deletion, so finish it.
			p.delete(pod, DeleteScaleDown, "")
		case pod.Terminating || p.isDeleted(pod):
			// Terminating, or evicted by this plan (a NoExecute taint).
			if isNew {
				r.newTerm++
			} else {
				r.oldTerm++
			}
		case !paused && (pod.Phase == manifests.PodFailed || pod.Phase == manifests.PodSucceeded):
			p.delete(pod, DeleteFailed, r.owner)
			if isNew {
				r.newTerm++
			} else {
				r.oldTerm++
			}
		case isNew:
			r.newPods = append(r.newPods, pod)
		default:
			r.oldPods = append(r.oldPods, pod)
		}
	}
	if !paused {
		if d.Spec.Strategy.Type == manifests.RecreateDeploymentStrategyType {
			p.recreate(r)
		} else {
			p.rollingUpdate(r)
		}
		p.scaleEvents(r)
	}
	p.plan.Deployments = append(p.plan.Deployments, p.status(r))
}

// rollingUpdate scales the new revision up as far as maxSurge allows and
// old revisions down as far as maxUnavailable allows, as Kubernetes'
// deployment controller does with ReplicaSets.
func (p *planner) rollingUpdate(r *rollout) {
	surge, unavailable := RolloutBounds(r.d)
	// Terminating pods do not count against the surge, as in Kubernetes (a ReplicaSet stops
	// counting a pod once its deletion started): the next pods do not wait for the old pods'
	// grace periods.
	total := len(r.newPods) + len(r.oldPods)

	switch n := len(r.newPods); {
	case n > r.replicas:
		p.deleteFirst(r, r.newPods, n-r.replicas, DeleteScaleDown)
	case n < r.replicas:
		room := r.replicas + surge - total
		p.createPods(r, min(r.replicas-n, max(room, 0)))
	}
	if len(r.oldPods) == 0 {
		return
	}

	// Old revisions: first drop pods that are not available (that costs no
	// availability), then available ones down to replicas - maxUnavailable.
	minAvailable := r.replicas - unavailable
	newAvailable, newTotal := 0, r.created
	for _, pod := range r.newPods {
		if !r.deleted[pod] {
			newTotal++
			if p.podAvailable(pod, r.minReady) {
				newAvailable++
			}
		}
	}
	newUnavailable := newTotal - newAvailable
	maxScaledDown := newTotal + len(r.oldPods) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return
	}
	var unhealthy, healthy []*Pod
	for _, pod := range r.oldPods {
		if p.podAvailable(pod, r.minReady) {
			healthy = append(healthy, pod)
		} else {
			unhealthy = append(unhealthy, pod)
		}
	}
	cleaned := min(maxScaledDown, len(unhealthy))
	p.deleteFirst(r, unhealthy, cleaned, DeleteRollout)
	canDrop := newAvailable + len(healthy) - minAvailable
	p.deleteFirst(r, healthy, min(maxScaledDown-cleaned, canDrop), DeleteRollout)
}

// recreate deletes every old pod, waits until they are all gone, then
// scales the new revision to replicas.
func (p *planner) recreate(r *rollout) {
	p.deleteFirst(r, r.oldPods, len(r.oldPods), DeleteRecreate)
	if n := len(r.newPods); n > r.replicas {
		p.deleteFirst(r, r.newPods, n-r.replicas, DeleteScaleDown)
	} else if len(r.oldPods)+r.oldTerm == 0 {
		p.createPods(r, r.replicas-n)
	}
}

// deleteFirst deletes the first n pods of pods in deletion order.
func (p *planner) deleteFirst(r *rollout, pods []*Pod, n int, reason string) {
	if n <= 0 {
		return
	}
	pods = slices.Clone(pods)
	p.deletionOrder(pods)
	for _, pod := range pods[:min(n, len(pods))] {
		r.deleted[pod] = true
		p.delete(pod, reason, "")
	}
}

// createPods creates n pods of the Deployment's current revision.
func (p *planner) createPods(r *rollout, n int) {
	if n <= 0 {
		return
	}
	d := r.d
	podLabels := make(map[string]string, len(d.Spec.Template.Labels)+1)
	maps.Copy(podLabels, d.Spec.Template.Labels)
	podLabels[PodTemplateHashLabel] = r.hash
	req := requestOf(d.Namespace, podLabels, &d.Spec.Template.Spec)
	for range n {
		uid := p.ids.NewUID()
		name := p.uniqueName(d.Namespace, func(suffix string) string { return PodName(d.Name, r.hash, suffix) })
		labels := maps.Clone(podLabels)
		spec := &manifests.Pod{
			TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: manifests.ObjectMeta{
				Name: name, Namespace: d.Namespace, Labels: labels,
				Annotations: maps.Clone(d.Spec.Template.Annotations),
			},
			Spec: *d.Spec.Template.Spec.DeepCopy(),
		}
		p.create(Pod{
			UID: uid, Namespace: d.Namespace, Name: name, Owner: r.owner, TemplateHash: r.hash,
			Spec: spec, Commit: p.s.Commit, Created: p.s.Now, Phase: manifests.PodPending,
		}, req)
		r.created++
	}
}

// scaleEvents reports each revision whose pod count the plan changes, in
// the words of Kubernetes' ScalingReplicaSet events.
func (p *planner) scaleEvents(r *rollout) {
	obj := r.owner
	newDeleted := 0
	for _, pod := range r.newPods {
		if r.deleted[pod] {
			newDeleted++
		}
	}
	newCount := len(r.newPods) - newDeleted + r.created
	rev := RevisionName(r.d.Name, r.hash)
	if r.created > 0 {
		p.event(obj, EventNormal, "ScalingReplicaSet", "Scaled up "+rev+" to "+strconv.Itoa(newCount))
	}
	if newDeleted > 0 {
		p.event(obj, EventNormal, "ScalingReplicaSet", "Scaled down "+rev+" to "+strconv.Itoa(newCount))
	}
	type oldRev struct{ left, deleted int }
	var hashes []string
	old := make(map[string]*oldRev)
	for _, pod := range r.oldPods {
		o := old[pod.TemplateHash]
		if o == nil {
			o = &oldRev{}
			old[pod.TemplateHash] = o
			hashes = append(hashes, pod.TemplateHash)
		}
		if r.deleted[pod] {
			o.deleted++
		} else {
			o.left++
		}
	}
	slices.Sort(hashes)
	for _, h := range hashes {
		if o := old[h]; o.deleted > 0 {
			p.event(obj, EventNormal, "ScalingReplicaSet", "Scaled down "+RevisionName(r.d.Name, h)+" to "+strconv.Itoa(o.left))
		}
	}
}

// status computes the Deployment's status as it will be after the plan.
func (p *planner) status(r *rollout) DeploymentStatus {
	var st manifests.DeploymentStatus
	oldLeft := r.oldTerm
	count := func(pod *Pod, updated bool) {
		if r.deleted[pod] {
			return
		}
		st.Replicas++
		if updated {
			st.UpdatedReplicas++
		}
		if p.podReady(pod) {
			st.ReadyReplicas++
		}
		if p.podAvailable(pod, r.minReady) {
			st.AvailableReplicas++
		}
	}
	for _, pod := range r.newPods {
		count(pod, true)
	}
	for _, pod := range r.oldPods {
		count(pod, false)
		oldLeft++ // deleted ones are terminating now: still there
	}
	st.Replicas += int32(r.created)
	st.UpdatedReplicas += int32(r.created)
	want := int32(r.replicas)
	st.UnavailableReplicas = max(want-st.AvailableReplicas, 0)

	_, unavailable := RolloutBounds(r.d)
	complete := oldLeft == 0 && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want
	rev := RevisionName(r.d.Name, r.hash)
	avail := manifests.DeploymentCondition{Type: manifests.DeploymentAvailable}
	if st.AvailableReplicas >= want-int32(unavailable) {
		avail.Status, avail.Reason, avail.Message = manifests.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability."
	} else {
		avail.Status, avail.Reason, avail.Message = manifests.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
	}
	prog := manifests.DeploymentCondition{Type: manifests.DeploymentProgressing}
	switch {
	case r.d.Spec.Paused:
		prog.Status, prog.Reason, prog.Message = manifests.ConditionUnknown, "DeploymentPaused", "Deployment is paused."
	case complete:
		prog.Status, prog.Reason, prog.Message = manifests.ConditionTrue, "NewReplicaSetAvailable", "Revision \""+rev+"\" has successfully progressed."
	default:
		prog.Status, prog.Reason, prog.Message = manifests.ConditionTrue, "ReplicaSetUpdated", "Revision \""+rev+"\" is progressing."
	}
	st.Conditions = p.conditionTimes(r.d.Namespace+"/"+r.d.Name, avail, prog)
	return DeploymentStatus{
		Namespace: r.d.Namespace, Name: r.d.Name, TemplateHash: r.hash, ObservedCommit: p.s.Commit,
		Complete: complete, DeploymentStatus: st,
	}
}

// conditionTimes gives conditions their times, as Kubernetes' deployment
// controller does: a condition whose status is unchanged since it was last
// recorded keeps its lastTransitionTime, and one whose reason and message
// are unchanged too keeps its lastUpdateTime; the others get State.Now.
func (p *planner) conditionTimes(key string, conds ...manifests.DeploymentCondition) []manifests.DeploymentCondition {
	now := manifests.NewTime(p.s.Now)
	prev := p.s.DeploymentConditions[key]
	for i := range conds {
		c := &conds[i]
		c.LastUpdateTime, c.LastTransitionTime = now, now
		for _, pc := range prev {
			if pc.Type == c.Type && pc.Status == c.Status {
				c.LastTransitionTime = pc.LastTransitionTime
				if pc.Reason == c.Reason && pc.Message == c.Message {
					c.LastUpdateTime = pc.LastUpdateTime
				}
			}
		}
	}
	return conds
}
