package reconcile

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// StatefulSetOwner returns the Pod.Owner of a StatefulSet's pods, and the
// ClaimState.Owner of the claims its volumeClaimTemplates make.
func StatefulSetOwner(namespace, name string) string {
	return "StatefulSet/" + namespace + "/" + name
}

// isStatefulSetPod reports whether a StatefulSet owns the pod.
func isStatefulSetPod(pod *Pod) bool { return strings.HasPrefix(pod.Owner, "StatefulSet/") }

// StatefulSetStatus is a StatefulSet's status as it will be once the plan
// is applied.
type StatefulSetStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UpdateHash is the hash of the template in git; CurrentHash that of
	// the revision the pods below the partition keep, and CurrentTemplate
	// that revision's template, so that such a pod is made again as it was
	// after git has moved on.
	UpdateHash      string                     `json:"updateHash"`
	CurrentHash     string                     `json:"currentHash"`
	CurrentTemplate *manifests.PodTemplateSpec `json:"currentTemplate,omitempty"`
	ObservedCommit  string                     `json:"observedCommit,omitempty"`
	// Complete is true when every ordinal has an available pod of the
	// revision it should run and no pod beyond the replicas is left.
	Complete bool `json:"complete"`
	manifests.StatefulSetStatus
}

// statefulSetRevision is the name of a revision as Kubernetes shows it
// (status.currentRevision, the controller-revision-hash label).
func statefulSetRevision(name, hash string) string { return name + "-" + hash }

// ordinalOf returns the ordinal in a StatefulSet's pod name, -1 when the
// name is not <set>-<ordinal>.
func ordinalOf(set, pod string) int32 {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return -1
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	if err != nil || n < 0 {
		return -1
	}
	return int32(n)
}

// statefulRun is one StatefulSet during a plan.
type statefulRun struct {
	p        *planner
	set      *manifests.StatefulSet
	owner    string
	object   string
	hash     string // the update revision: git's template
	current  string // the current revision
	tmpl     *manifests.PodTemplateSpec
	curTmpl  *manifests.PodTemplateSpec
	minReady time.Duration
	// byOrdinal are the set's pods not being deleted, one per ordinal at
	// most; busy are the ordinals whose pod is being deleted.
	byOrdinal map[int32]*Pod
	busy      map[int32]bool
	created   map[int32]string // ordinals created in this plan, with their revision hash
}

// statefulSet plans one StatefulSet as Kubernetes' controller does: a pod
// per ordinal, each made only once the pod of that name is gone (never two
// pods with one ordinal), in order and one at a time for OrderedReady, at
// once for Parallel; scale-down from the highest ordinal; a new template
// rolled out from the highest ordinal down to the partition, one pod at a
// time once all are Running and Ready (or only as pods are deleted, for
// OnDelete). Each pod gets the claims of the set's volumeClaimTemplates
// for its ordinal, which a replaced pod keeps.
func (p *planner) statefulSet(set *manifests.StatefulSet, pods []*Pod) {
	owner := StatefulSetOwner(set.Namespace, set.Name)
	r := &statefulRun{
		p: p, set: set, owner: owner, object: owner, hash: TemplateHash(&set.Spec.Template), tmpl: &set.Spec.Template,
		minReady: time.Duration(set.Spec.MinReadySeconds) * time.Second, byOrdinal: map[int32]*Pod{}, busy: map[int32]bool{},
		created: map[int32]string{},
	}
	r.current, r.curTmpl = r.hash, r.tmpl
	if prev, ok := p.s.StatefulSets[ClaimKey(set.Namespace, set.Name)]; ok && prev.CurrentHash != r.hash && prev.CurrentTemplate != nil {
		r.current, r.curTmpl = prev.CurrentHash, prev.CurrentTemplate
	}

	start := set.StartOrdinal()
	replicas := *set.Spec.Replicas
	end := start + replicas
	var condemned []*Pod
	for _, pod := range pods {
		ord := ordinalOf(set.Name, pod.Name)
		switch {
		case pod.Node != "" && p.nodeGone(pod.Node):
			// Its node was removed from the cluster: nothing runs it any more.
			p.delete(pod, DeleteNodeLost, owner)
			if ord >= 0 {
				r.busy[ord] = true
			}
		case pod.Terminating && pod.Node == "":
			p.delete(pod, DeleteScaleDown, "")
			r.busy[ord] = true
		case pod.Terminating || p.isDeleted(pod):
			r.busy[ord] = true
		case ord < 0 || r.byOrdinal[ord] != nil:
			// Not a name the set makes, or a second pod with one ordinal.
			r.del(pod, DeleteScaleDown)
		case pod.Phase == manifests.PodFailed || pod.Phase == manifests.PodSucceeded:
			// Made again, with its name, once it is gone.
			r.del(pod, DeleteFailed)
			r.busy[ord] = true
		case ord < start || ord >= end:
			r.byOrdinal[ord] = pod
			condemned = append(condemned, pod)
		default:
			r.byOrdinal[ord] = pod
		}
	}
	slices.SortFunc(condemned, func(a, b *Pod) int { return int(ordinalOf(set.Name, b.Name) - ordinalOf(set.Name, a.Name)) })

	ordered := set.Spec.PodManagementPolicy != manifests.ParallelPodManagement
	blocked := false
	for ord := range r.busy {
		if ord < start || ord >= end {
			// A pod beyond the replicas is still being deleted.
			blocked = ordered
		}
	}
	for ord := start; ord < end && !blocked; ord++ {
		pod := r.byOrdinal[ord]
		switch {
		case r.busy[ord]:
			blocked = ordered
		case pod == nil:
			r.createPod(ord)
			blocked = ordered
		case !r.healthy(pod):
			blocked = ordered
		}
	}
	// Scale down from the highest ordinal: for OrderedReady one pod at a
	// time, once every other pod is healthy.
	for _, pod := range condemned {
		if blocked {
			break
		}
		ord := ordinalOf(set.Name, pod.Name)
		r.del(pod, DeleteScaleDown)
		delete(r.byOrdinal, ord)
		r.busy[ord] = true
		blocked = ordered
	}
	if !blocked && set.Spec.UpdateStrategy.Type == manifests.RollingUpdateStatefulSetStrategyType {
		r.rollingUpdate(start, replicas)
	}
	r.claimRetention(start, end)
	p.plan.StatefulSets = append(p.plan.StatefulSets, r.status(start, end))
}

// healthy reports whether the pod is Running and Ready (available, with
// minReadySeconds), which OrderedReady waits for before the next step.
func (r *statefulRun) healthy(pod *Pod) bool {
	return pod.Phase == manifests.PodRunning && r.p.podAvailable(pod, r.minReady)
}

// rollingUpdate deletes the pod with the highest ordinal at or above the
// partition that is not of the update revision, once every pod from the
// top down to it is healthy; it is made again, of the update revision,
// once it is gone.
func (r *statefulRun) rollingUpdate(start, replicas int32) {
	partition := int32(0)
	if ru := r.set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = *ru.Partition
	}
	for i := replicas - 1; i >= partition && i >= 0; i-- {
		ord := start + i
		pod := r.byOrdinal[ord]
		if pod == nil || r.busy[ord] {
			return // being made or deleted
		}
		if pod.TemplateHash != r.hash {
			r.del(pod, DeleteRollout)
			delete(r.byOrdinal, ord)
			r.busy[ord] = true
			return
		}
		if !r.healthy(pod) {
			return
		}
	}
}

func (r *statefulRun) del(pod *Pod, reason string) {
	r.p.delete(pod, reason, r.owner)
	r.p.event(r.object, EventNormal, "SuccessfulDelete", "delete Pod "+pod.Name+" in StatefulSet "+r.set.Name+" successful")
}

// revisionFor returns the template and hash the pod with the ordinal is
// made from: the current revision below the partition of a rolling
// update, else git's.
func (r *statefulRun) revisionFor(ord int32) (*manifests.PodTemplateSpec, string) {
	if ru := r.set.Spec.UpdateStrategy.RollingUpdate; r.set.Spec.UpdateStrategy.Type == manifests.RollingUpdateStatefulSetStrategyType &&
		ru != nil && ru.Partition != nil && ord < r.set.StartOrdinal()+*ru.Partition {
		return r.curTmpl, r.current
	}
	return r.tmpl, r.hash
}

// createPod makes the pod of an ordinal, and the claims of its
// volumeClaimTemplates that do not exist yet. It makes nothing while a
// claim of the ordinal is still being deleted (released by a scale-down):
// the pod then gets a new claim once the old one is gone.
func (r *statefulRun) createPod(ord int32) {
	p, set := r.p, r.set
	name := set.PodName(ord)
	if _, taken := p.names[set.Namespace+"/"+name]; taken {
		p.event(r.object, EventWarning, "FailedCreate", "create Pod "+name+" in StatefulSet "+set.Name+
			" failed: a pod of that name, not the StatefulSet's, exists")
		return
	}
	for _, t := range set.Spec.VolumeClaimTemplates {
		if c := p.claims.get(set.Namespace, set.ClaimName(t.Name, ord)); c != nil && c.Deleting {
			return
		}
	}
	for _, t := range set.Spec.VolumeClaimTemplates {
		claim := set.ClaimName(t.Name, ord)
		if p.claims.get(set.Namespace, claim) != nil {
			continue
		}
		p.claims.add(&ClaimState{Namespace: set.Namespace, Name: claim, UID: p.ids.NewUID(), Owner: r.owner,
			Capacity: t.StorageRequest(), AccessModes: slices.Clone(t.Spec.AccessModes), ReclaimPolicy: t.ReclaimPolicy(p.storageClasses()),
			Created: p.s.Now})
		p.event(r.object, EventNormal, "SuccessfulCreate", "create Claim "+claim+" Pod "+name+" in StatefulSet "+set.Name+" success")
	}
	tmpl, hash := r.revisionFor(ord)
	labels := maps.Clone(tmpl.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ControllerRevisionHashLabel] = statefulSetRevision(set.Name, hash)
	labels[manifests.StatefulSetPodNameLabel] = name
	labels[manifests.PodIndexLabel] = strconv.Itoa(int(ord))
	spec := set.PodSpecFor(&tmpl.Spec, ord)
	pod := &manifests.Pod{
		TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: set.Namespace, Labels: labels,
			Annotations: maps.Clone(tmpl.Annotations)},
		Spec: *spec,
	}
	p.create(Pod{
		UID: p.ids.NewUID(), Namespace: set.Namespace, Name: name, Owner: r.owner, TemplateHash: hash,
		Spec: pod, Commit: p.s.Commit, Created: p.s.Now, Phase: manifests.PodPending,
	}, requestOf(set.Namespace, labels, spec))
	r.created[ord] = hash
	p.event(r.object, EventNormal, "SuccessfulCreate", "create Pod "+name+" in StatefulSet "+set.Name+" successful")
}

// claimRetention applies persistentVolumeClaimRetentionPolicy.whenScaled
// to the set's claims of ordinals beyond its replicas: Delete releases
// them once their pods are gone, Retain keeps them for a later scale-up.
func (r *statefulRun) claimRetention(start, end int32) {
	policy := r.set.ClaimRetention()
	for _, c := range r.p.claims.ownedBy(r.owner) {
		c.WhenDeleted = policy.WhenDeleted
		ord := claimOrdinal(r.set, c.Name)
		if ord < 0 || (ord >= start && ord < end) {
			continue
		}
		if policy.WhenScaled == manifests.DeleteClaimRetention && !c.Deleting {
			c.Deleting = true
			r.p.event("PersistentVolumeClaim/"+ClaimKey(c.Namespace, c.Name), EventNormal, "ScaledDown",
				"StatefulSet "+r.set.Name+" scaled below ordinal "+strconv.Itoa(int(ord))+"; the claim goes once its pod is gone (whenScaled: Delete)")
		}
	}
}

// claimOrdinal returns the ordinal of a claim the set's templates made, -1
// when no template makes the name.
func claimOrdinal(set *manifests.StatefulSet, claim string) int32 {
	for _, t := range set.Spec.VolumeClaimTemplates {
		if rest, ok := strings.CutPrefix(claim, t.Name+"-"); ok {
			if ord := ordinalOf(set.Name, rest); ord >= 0 {
				return ord
			}
		}
	}
	return -1
}

// status counts the set's pods as they will be after the plan.
func (r *statefulRun) status(start, end int32) StatefulSetStatus {
	var st manifests.StatefulSetStatus
	partition := int32(0)
	rolling := r.set.Spec.UpdateStrategy.Type == manifests.RollingUpdateStatefulSetStrategyType
	if ru := r.set.Spec.UpdateStrategy.RollingUpdate; rolling && ru != nil && ru.Partition != nil {
		partition = *ru.Partition
	}
	complete := true
	for _, hash := range r.created {
		st.Replicas++
		if hash == r.hash {
			st.UpdatedReplicas++
		}
		if hash == r.current {
			st.CurrentReplicas++
		}
		complete = false
	}
	for ord, pod := range r.byOrdinal {
		if r.p.isDeleted(pod) {
			continue
		}
		st.Replicas++
		if pod.TemplateHash == r.hash {
			st.UpdatedReplicas++
		}
		if pod.TemplateHash == r.current {
			st.CurrentReplicas++
		}
		if r.p.podReady(pod) {
			st.ReadyReplicas++
		}
		available := r.p.podAvailable(pod, r.minReady)
		if available {
			st.AvailableReplicas++
		}
		switch {
		case ord < start || ord >= end:
			complete = false
		case !available:
			complete = false
		case rolling && ord-start >= partition && pod.TemplateHash != r.hash:
			complete = false
		}
	}
	for ord := start; ord < end; ord++ {
		if r.byOrdinal[ord] == nil && r.created[ord] == "" {
			complete = false
		}
	}
	for ord := range r.busy {
		if ord < start || ord >= end {
			complete = false // a pod beyond the replicas is still stopping
		}
	}
	current, curTmpl := r.current, r.curTmpl
	// Every pod is of git's revision: it becomes the current one.
	if st.UpdatedReplicas == *r.set.Spec.Replicas && st.Replicas == st.UpdatedReplicas && st.ReadyReplicas == st.Replicas {
		current, curTmpl = r.hash, r.tmpl
		st.CurrentReplicas = st.UpdatedReplicas
	}
	st.CurrentRevision = statefulSetRevision(r.set.Name, current)
	st.UpdateRevision = statefulSetRevision(r.set.Name, r.hash)
	return StatefulSetStatus{Namespace: r.set.Namespace, Name: r.set.Name, UpdateHash: r.hash, CurrentHash: current,
		CurrentTemplate: curTmpl, ObservedCommit: r.p.s.Commit, Complete: complete, StatefulSetStatus: st}
}
