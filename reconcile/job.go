package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// Job back-off, as Kubernetes' Job controller has it: a failed pod is
// replaced after 10 s, doubling with each failure since the last success,
// at most 6 minutes.
const (
	JobBackoffBase = 10 * time.Second
	JobBackoffMax  = 6 * time.Minute
)

// JobOwner returns the Pod.Owner of a Job's pods.
func JobOwner(namespace, name string) string {
	return "Job/" + namespace + "/" + name
}

// JobStatus is a Job's status as it will be once the plan is applied, with
// what the controller needs from one pass to the next; the master stores it
// and passes it back in State.Jobs.
type JobStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UID identifies the run: the pods' controller-uid label. A Job whose
	// template (or completions, completion mode or pod failure policy)
	// changes in git starts a new run with a new UID.
	UID string `json:"uid"`
	// Run is the hash of what identifies the run (JobRunHash); the pods'
	// TemplateHash.
	Run string `json:"run"`
	// ObservedCommit is the commit the status was computed for.
	ObservedCommit string `json:"observedCommit,omitempty"`
	// Counted holds the UIDs of the Job's pods whose outcome is in
	// Succeeded and Failed (or was ignored by the pod failure policy), so
	// that no pod is counted twice and a pod may go once it is counted.
	Counted []string `json:"counted,omitempty"`
	// FailuresSinceSuccess and LastFailure drive the back-off before a
	// failed pod is replaced.
	FailuresSinceSuccess int32     `json:"failuresSinceSuccess,omitempty"`
	LastFailure          time.Time `json:"lastFailure,omitzero"`
	// Expired is set once ttlSecondsAfterFinished has passed and the
	// Job's pods were deleted; the Job is not run again.
	Expired bool `json:"expired,omitempty"`
	// CreatedBy names the CronJob that made the Job, "" for a Job from
	// git.
	CreatedBy string `json:"createdBy,omitempty"`
	manifests.JobStatus
}

// Finished reports whether the Job is Complete or Failed.
func (s JobStatus) Finished() bool {
	return s.Condition(manifests.JobComplete) || s.Condition(manifests.JobFailed)
}

// Condition reports whether the Job has the condition with status True.
func (s JobStatus) Condition(t manifests.JobConditionType) bool {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c.Status == manifests.ConditionTrue
		}
	}
	return false
}

// JobRunHash returns what identifies a run of the Job: its pod template,
// completions, completion mode and pod failure policy, the fields
// Kubernetes does not let change on a Job. Changing parallelism, suspend,
// backoffLimit, activeDeadlineSeconds or ttlSecondsAfterFinished keeps the
// run.
func JobRunHash(j *manifests.JobSpec) string {
	return hashJSON(struct {
		Template    *manifests.PodTemplateSpec  `json:"template"`
		Completions *int32                      `json:"completions,omitempty"`
		Mode        *manifests.CompletionMode   `json:"completionMode,omitempty"`
		Policy      *manifests.PodFailurePolicy `json:"podFailurePolicy,omitempty"`
	}{&j.Template, j.Completions, j.CompletionMode, j.PodFailurePolicy})
}

// jobRun is one pass over one Job.
type jobRun struct {
	j       *manifests.Job
	owner   string
	key     string
	st      JobStatus
	counted map[string]bool
	// active are the Job's current pods that run or will run: not ended,
	// not terminating, not deleted by this plan.
	active      []*Pod
	terminating int
	completed   map[int]bool // Indexed: the completed indexes
	restarts    int32        // restartPolicy OnFailure: restarts of the active pods
	failJob     string       // the message of a FailJob rule that matched
	created     int          // pods created by this plan
	pods        []*Pod       // every pod of the Job
}

// job plans one Job: count its pods' outcomes, fail or complete it, keep
// parallelism pods running, and report its status.
func (p *planner) job(j *manifests.Job, pods []*Pod, createdBy string) {
	r := &jobRun{
		j:         j,
		owner:     JobOwner(j.Namespace, j.Name),
		key:       j.Namespace + "/" + j.Name,
		counted:   map[string]bool{},
		completed: map[int]bool{},
		pods:      pods,
	}
	run := JobRunHash(&j.Spec)
	prev, had := p.s.Jobs[r.key]
	if had && prev.Run == run {
		r.st = prev
		r.st.Conditions = slices.Clone(prev.Conditions)
		for _, uid := range prev.Counted {
			r.counted[uid] = true
		}
		for _, i := range parseIndexes(prev.CompletedIndexes) {
			r.completed[i] = true
		}
	} else {
		r.st = JobStatus{Namespace: j.Namespace, Name: j.Name, UID: p.ids.NewUID(), Run: run}
	}
	r.st.CreatedBy = createdBy
	r.st.ObservedCommit = p.s.Commit
	present := map[string]bool{}
	for _, pod := range pods {
		present[pod.UID] = true
		p.jobPod(r, pod, run)
	}
	// A counted pod that is gone no longer needs remembering.
	r.st.Counted = r.st.Counted[:0:0]
	for _, uid := range slices.Sorted(maps.Keys(r.counted)) {
		if present[uid] {
			r.st.Counted = append(r.st.Counted, uid)
		}
	}
	r.st.CompletedIndexes = formatIndexes(r.completed)
	p.jobProgress(r)
	p.jobStatus(r)
	p.plan.Jobs = append(p.plan.Jobs, r.st)
}

// jobPod sorts one of the Job's pods and counts its outcome.
func (p *planner) jobPod(r *jobRun, pod *Pod, run string) {
	ended := pod.Phase == manifests.PodSucceeded || pod.Phase == manifests.PodFailed
	switch {
	case pod.TemplateHash != run:
		// A pod of an earlier run of the Job (its template changed in git).
		if p.nodeLost(pod) {
			p.delete(pod, DeleteNodeLost, r.owner)
		} else if !pod.Terminating || pod.Node == "" {
			p.delete(pod, DeleteSpecChanged, r.owner)
		}
	case p.nodeLost(pod):
		if ended {
			p.countEnded(r, pod)
		} else if !r.counted[pod.UID] {
			p.countFailure(r, pod, true)
		}
		p.delete(pod, DeleteNodeLost, r.owner) // counted: it may go
	case ended:
		// A pod the Job stopped itself (suspended, finished, expired) did
		// not fail; one stopped by a disruption was counted when it was.
		if pod.Phase == manifests.PodSucceeded || !pod.Terminating || !stoppedByJob(pod.DeleteReason) {
			p.countEnded(r, pod)
		}
		if pod.Terminating {
			r.terminating++
			if pod.Node == "" {
				p.delete(pod, DeleteScaleDown, "")
			}
		}
	case p.isDeleted(pod):
		// Evicted or drained by this plan: the pod fails with
		// DisruptionTarget, as Kubernetes marks it.
		if !r.counted[pod.UID] {
			p.countFailure(r, pod, true)
		}
		r.terminating++
	case pod.Terminating:
		if disruption(pod.DeleteReason) && !r.counted[pod.UID] {
			p.countFailure(r, pod, true)
		}
		if pod.Node == "" {
			p.delete(pod, DeleteScaleDown, "")
			return
		}
		r.terminating++
	default:
		r.active = append(r.active, pod)
		if r.j.Spec.Template.Spec.RestartPolicy == manifests.RestartPolicyOnFailure {
			r.restarts += pod.Restarts
		}
	}
}

// stoppedByJob reports whether a deletion reason is the Job's own doing.
func stoppedByJob(reason string) bool {
	switch reason {
	case DeleteJobSuspended, DeleteJobFinished, DeleteJobExpired, DeleteJobDeleted, DeleteSpecChanged, DeletePruned, DeleteScaleDown:
		return true
	}
	return false
}

// disruption reports whether a deletion reason is a disruption, which a
// Job counts as a failure with DisruptionTarget.
func disruption(reason string) bool {
	switch reason {
	case DeleteNodeLost, DeleteTaintEviction, DeleteDrained:
		return true
	}
	return false
}

// countEnded counts a pod that succeeded or failed, once.
func (p *planner) countEnded(r *jobRun, pod *Pod) {
	if r.counted[pod.UID] {
		return
	}
	if pod.Phase == manifests.PodFailed {
		p.countFailure(r, pod, false)
		return
	}
	r.counted[pod.UID] = true
	r.st.FailuresSinceSuccess = 0
	if jobIndexed(r.j) {
		i, ok := podIndex(pod)
		if !ok || r.completed[i] {
			return // a second pod of a completed index counts once
		}
		r.completed[i] = true
	}
	r.st.Succeeded++
}

// countFailure counts a failed pod by the Job's pod failure policy.
func (p *planner) countFailure(r *jobRun, pod *Pod, disrupted bool) {
	r.counted[pod.UID] = true
	action, msg := p.failureAction(r.j, pod, disrupted)
	switch action {
	case manifests.PodFailurePolicyActionIgnore:
		return
	case manifests.PodFailurePolicyActionFailJob:
		if r.failJob == "" {
			r.failJob = msg
		}
	}
	r.st.Failed++
	r.st.FailuresSinceSuccess++
	at := podFinished(pod)
	if at.IsZero() || disrupted {
		at = p.s.Now
	}
	if at.After(r.st.LastFailure) {
		r.st.LastFailure = at
	}
}

// failureAction returns the action of the first pod failure policy rule
// that matches the failed pod (Count without a policy or a match), and for
// FailJob the message Kubernetes gives.
func (p *planner) failureAction(j *manifests.Job, pod *Pod, disrupted bool) (manifests.PodFailurePolicyAction, string) {
	if j.Spec.PodFailurePolicy == nil {
		return manifests.PodFailurePolicyActionCount, ""
	}
	for i, rule := range j.Spec.PodFailurePolicy.Rules {
		if e := rule.OnExitCodes; e != nil {
			if c, code, ok := matchExitCodes(e, pod); ok {
				return rule.Action, fmt.Sprintf("Container %s for pod %s/%s failed with exit code %d matching %s rule at index %d",
					c, pod.Namespace, pod.Name, code, rule.Action, i)
			}
			continue
		}
		for _, pat := range rule.OnPodConditions {
			if podHasCondition(pod, pat, disrupted) {
				return rule.Action, fmt.Sprintf("Pod %s/%s has condition %s matching %s rule at index %d",
					pod.Namespace, pod.Name, pat.Type, rule.Action, i)
			}
		}
	}
	return manifests.PodFailurePolicyActionCount, ""
}

// matchExitCodes finds the first container (app containers, not init ones,
// as Kubernetes checks them) whose non-zero exit code satisfies e.
func matchExitCodes(e *manifests.PodFailurePolicyOnExitCodesRequirement, pod *Pod) (string, int32, bool) {
	if pod.Status == nil {
		return "", 0, false
	}
	check := func(statuses []manifests.ContainerStatus) (string, int32, bool) {
		for _, cs := range statuses {
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 || (e.ContainerName != nil && *e.ContainerName != cs.Name) {
				continue
			}
			in := slices.Contains(e.Values, t.ExitCode)
			if in == (e.Operator == manifests.PodFailurePolicyOnExitCodesOpIn) {
				return cs.Name, t.ExitCode, true
			}
		}
		return "", 0, false
	}
	if c, code, ok := check(pod.Status.ContainerStatuses); ok {
		return c, code, true
	}
	return check(pod.Status.InitContainerStatuses)
}

// podHasCondition reports whether the pod has a condition of the pattern.
// A disrupted pod has DisruptionTarget True.
func podHasCondition(pod *Pod, pat manifests.PodFailurePolicyOnPodConditionsPattern, disrupted bool) bool {
	status := pat.Status
	if status == "" {
		status = manifests.ConditionTrue
	}
	if pat.Type == manifests.PodDisruptionTarget && disrupted {
		return status == manifests.ConditionTrue
	}
	if pod.Status == nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if string(c.Type) == pat.Type {
			return c.Status == status
		}
	}
	return false
}

// jobProgress decides whether the Job has failed or succeeded, suspends or
// resumes it, and keeps its pods running.
func (p *planner) jobProgress(r *jobRun) {
	spec := &r.j.Spec
	now := manifests.NewTime(p.s.Now)
	if r.st.Finished() {
		p.jobFinished(r)
		return
	}
	suspended := jobSuspended(spec)
	failing := r.st.Condition(manifests.JobFailureTarget)
	succeeding := r.st.Condition(manifests.JobSuccessCriteriaMet)
	if !failing && !succeeding {
		if !suspended && r.st.Condition(manifests.JobSuspended) {
			r.st.setCondition(p.s.Now, manifests.JobSuspended, manifests.ConditionFalse, "JobResumed", "Job resumed")
			r.st.StartTime = &now // the deadline counts from the resume
			p.event(r.owner, EventNormal, "Resumed", "Job resumed")
		}
		switch {
		case r.failJob != "":
			p.jobFailureTarget(r, "PodFailurePolicy", r.failJob)
		case r.st.Failed+r.restarts > jobBackoffLimit(spec):
			p.jobFailureTarget(r, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
		case p.jobSucceeded(r):
			r.st.setCondition(p.s.Now, manifests.JobSuccessCriteriaMet, manifests.ConditionTrue, "CompletionsReached", "Reached expected number of succeeded pods")
			succeeding = true
		case spec.ActiveDeadlineSeconds != nil && r.st.StartTime != nil && !suspended:
			left := time.Duration(*spec.ActiveDeadlineSeconds)*time.Second - p.s.Now.Sub(r.st.StartTime.Time)
			if left <= 0 {
				p.jobFailureTarget(r, "DeadlineExceeded", "Job was active longer than specified deadline")
			} else {
				p.requeue(left)
			}
		}
		failing = r.st.Condition(manifests.JobFailureTarget)
	}
	if failing || succeeding {
		// Stop what still runs; the Job is done once nothing does.
		for _, pod := range r.active {
			p.delete(pod, DeleteJobFinished, r.owner)
			r.terminating++
		}
		r.active = nil
		if r.terminating == 0 {
			p.jobDone(r, succeeding)
		}
		return
	}
	if suspended {
		for _, pod := range r.active {
			p.delete(pod, DeleteJobSuspended, r.owner)
			r.terminating++
		}
		r.active = nil
		if !r.st.Condition(manifests.JobSuspended) {
			r.st.setCondition(p.s.Now, manifests.JobSuspended, manifests.ConditionTrue, "JobSuspended", "Job suspended")
			p.event(r.owner, EventNormal, "Suspended", "Job suspended")
		}
		return
	}
	if r.st.StartTime == nil {
		r.st.StartTime = &now
		if d := spec.ActiveDeadlineSeconds; d != nil {
			p.requeue(time.Duration(*d) * time.Second)
		}
	}
	p.jobCreate(r)
}

// jobSucceeded reports whether the Job met its completions.
func (p *planner) jobSucceeded(r *jobRun) bool {
	spec := &r.j.Spec
	switch {
	case jobIndexed(r.j):
		return len(r.completed) >= int(*spec.Completions)
	case spec.Completions != nil:
		return r.st.Succeeded >= *spec.Completions
	default:
		// A work queue: done once a pod succeeded and no other runs.
		return r.st.Succeeded > 0 && len(r.active) == 0
	}
}

func (p *planner) jobFailureTarget(r *jobRun, reason, msg string) {
	r.st.setCondition(p.s.Now, manifests.JobFailureTarget, manifests.ConditionTrue, reason, msg)
	p.event(r.owner, EventWarning, reason, msg)
}

// jobDone gives a Job whose pods have all stopped its final condition.
func (p *planner) jobDone(r *jobRun, succeeded bool) {
	now := manifests.NewTime(p.s.Now)
	if succeeded {
		c := r.st.condition(manifests.JobSuccessCriteriaMet)
		r.st.setCondition(p.s.Now, manifests.JobComplete, manifests.ConditionTrue, c.Reason, c.Message)
		r.st.CompletionTime = &now
		p.event(r.owner, EventNormal, "Completed", "Job completed")
	} else {
		c := r.st.condition(manifests.JobFailureTarget)
		r.st.setCondition(p.s.Now, manifests.JobFailed, manifests.ConditionTrue, c.Reason, c.Message)
	}
	p.jobExpire(r)
}

// jobFinished handles a Job that is Complete or Failed: its pods that still
// run (a duplicate, a pod started before a failover) stop, and after
// ttlSecondsAfterFinished all of them go.
func (p *planner) jobFinished(r *jobRun) {
	for _, pod := range r.active {
		p.delete(pod, DeleteJobFinished, r.owner)
		r.terminating++
	}
	r.active = nil
	p.jobExpire(r)
}

// jobExpire deletes the pods of a finished Job once its TTL has passed.
// Kubernetes deletes the Job itself; in Shoal the Job stays in git, so it
// keeps its status and is not run again.
func (p *planner) jobExpire(r *jobRun) {
	ttl := r.j.Spec.TTLSecondsAfterFinished
	if ttl == nil {
		return
	}
	var at time.Time
	for _, c := range r.st.Conditions {
		if (c.Type == manifests.JobComplete || c.Type == manifests.JobFailed) && c.Status == manifests.ConditionTrue {
			at = c.LastTransitionTime.Time
		}
	}
	left := time.Duration(*ttl)*time.Second - p.s.Now.Sub(at)
	if left > 0 {
		p.requeue(left)
		return
	}
	if !r.st.Expired {
		p.event(r.owner, EventNormal, "TTLExpired", "Deleted the Job's pods "+strconv.Itoa(int(*ttl))+"s after it finished")
	}
	r.st.Expired = true
	for _, pod := range r.pods {
		if p.isDeleted(pod) {
			continue
		}
		if !pod.Terminating || pod.Node == "" {
			p.delete(pod, DeleteJobExpired, r.owner)
			if pod.Node != "" {
				r.terminating++
			}
		}
	}
}

// jobCreate starts the pods the Job needs: up to parallelism at a time,
// no more than the completions left, after the back-off of its failures.
func (p *planner) jobCreate(r *jobRun) {
	spec := &r.j.Spec
	running := len(r.active)
	if *spec.PodReplacementPolicy == manifests.Failed {
		running += r.terminating // a replacement waits until the pod has stopped
	}
	room := int(*spec.Parallelism) - running
	var indexes []int
	switch {
	case jobIndexed(r.j):
		busy := map[int]bool{}
		for _, pod := range r.active {
			if i, ok := podIndex(pod); ok {
				busy[i] = true
			}
		}
		for i := 0; i < int(*spec.Completions) && len(indexes) < room; i++ {
			if !r.completed[i] && !busy[i] {
				indexes = append(indexes, i)
			}
		}
		room = len(indexes)
	case spec.Completions != nil:
		room = min(room, int(*spec.Completions-r.st.Succeeded)-len(r.active))
	case r.st.Succeeded > 0:
		room = 0 // a work queue stops starting pods once one succeeded
	}
	if room <= 0 {
		return
	}
	if n := r.st.FailuresSinceSuccess; n > 0 {
		wait := JobBackoffBase << min(n-1, 10)
		wait = min(wait, JobBackoffMax)
		if left := wait - p.s.Now.Sub(r.st.LastFailure); left > 0 {
			p.requeue(left)
			return
		}
	}
	podLabels := maps.Clone(r.j.Spec.Template.Labels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	podLabels[manifests.JobNameLabel] = r.j.Name
	podLabels[manifests.LegacyJobNameLabel] = r.j.Name
	podLabels[manifests.ControllerUIDLabel] = r.st.UID
	podLabels[manifests.LegacyControllerUIDLabel] = r.st.UID
	req := requestOf(r.j.Namespace, podLabels, &r.j.Spec.Template.Spec)
	for n := range room {
		labels := maps.Clone(podLabels)
		annotations := maps.Clone(r.j.Spec.Template.Annotations)
		spec := r.j.Spec.Template.Spec.DeepCopy()
		base := r.j.Name
		if indexes != nil {
			i := strconv.Itoa(indexes[n])
			labels[manifests.JobCompletionIndexKey] = i
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[manifests.JobCompletionIndexKey] = i
			base = r.j.Name + "-" + i
			if spec.Hostname == "" {
				spec.Hostname = truncateName(base, maxPodNameLen)
			}
			addIndexEnv(spec)
		}
		name := p.uniqueName(r.j.Namespace, func(suffix string) string { return jobPodName(base, suffix) })
		pod := &manifests.Pod{
			TypeMeta:   manifests.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: r.j.Namespace, Labels: labels, Annotations: annotations},
			Spec:       *spec,
		}
		p.create(Pod{
			UID: p.ids.NewUID(), Namespace: r.j.Namespace, Name: name, Owner: r.owner, TemplateHash: r.st.Run,
			Spec: pod, Commit: p.s.Commit, Created: p.s.Now, Phase: manifests.PodPending,
		}, req)
		p.event(r.owner, EventNormal, "SuccessfulCreate", "Created pod: "+name)
		r.created++
	}
}

// addIndexEnv gives every container JOB_COMPLETION_INDEX from the pod's
// completion index annotation, as Kubernetes does.
func addIndexEnv(spec *manifests.PodSpec) {
	env := manifests.EnvVar{Name: manifests.JobCompletionIndexEnv, ValueFrom: &manifests.EnvVarSource{
		FieldRef: &manifests.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + manifests.JobCompletionIndexKey + "']"},
	}}
	add := func(cs []manifests.Container) {
		for i := range cs {
			if !slices.ContainsFunc(cs[i].Env, func(e manifests.EnvVar) bool { return e.Name == env.Name }) {
				cs[i].Env = append(cs[i].Env, env)
			}
		}
	}
	add(spec.InitContainers)
	add(spec.Containers)
}

// jobStatus fills in the counts of the Job's pods as they will be after the
// plan.
func (p *planner) jobStatus(r *jobRun) {
	var ready int32
	for _, pod := range r.active {
		if p.podReady(pod) {
			ready++
		}
	}
	r.st.Active = int32(len(r.active) + r.created)
	r.st.Ready = &ready
	t := int32(r.terminating)
	r.st.Terminating = &t
}

func jobIndexed(j *manifests.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == manifests.IndexedCompletion && j.Spec.Completions != nil
}

func jobSuspended(s *manifests.JobSpec) bool { return s.Suspend != nil && *s.Suspend }

func jobBackoffLimit(s *manifests.JobSpec) int32 {
	if s.BackoffLimit == nil {
		return manifests.DefaultBackoffLimit
	}
	return *s.BackoffLimit
}

// podIndex returns an Indexed Job pod's completion index.
func podIndex(pod *Pod) (int, bool) {
	if pod.Spec == nil {
		return 0, false
	}
	v, ok := pod.Spec.Annotations[manifests.JobCompletionIndexKey]
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(v)
	return i, err == nil && i >= 0
}

// podFinished returns when the pod's last container ended, zero when
// unknown.
func podFinished(pod *Pod) time.Time {
	var at time.Time
	if pod.Status == nil {
		return at
	}
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		if t := cs.State.Terminated; t != nil && t.FinishedAt.After(at) {
			at = t.FinishedAt.Time
		}
	}
	return at
}

// jobPodName is "<base>-<suffix>", base cut so the name fits in 63
// characters, as Kubernetes' generateName does.
func jobPodName(base, suffix string) string {
	return truncateName(base, maxPodNameLen-len(suffix)-1) + "-" + suffix
}

func truncateName(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.TrimRight(s[:n], "-.")
}

// condition returns the Job's condition of type t (zero when it has none).
func (s JobStatus) condition(t manifests.JobConditionType) manifests.JobCondition {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c
		}
	}
	return manifests.JobCondition{}
}

// setCondition sets a condition; its times stay while its status does not
// change.
func (s *JobStatus) setCondition(now time.Time, t manifests.JobConditionType, status manifests.ConditionStatus, reason, msg string) {
	c := manifests.JobCondition{Type: t, Status: status, Reason: reason, Message: msg,
		LastProbeTime: manifests.NewTime(now), LastTransitionTime: manifests.NewTime(now)}
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			if s.Conditions[i].Status == status {
				c.LastTransitionTime = s.Conditions[i].LastTransitionTime
			}
			s.Conditions[i] = c
			return
		}
	}
	s.Conditions = append(s.Conditions, c)
}

// formatIndexes writes a set of indexes as Kubernetes' completedIndexes:
// "1,3-5,7".
func formatIndexes(set map[int]bool) string {
	idx := slices.Sorted(maps.Keys(set))
	var b strings.Builder
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(idx[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(idx[j]))
		}
		i = j + 1
	}
	return b.String()
}

// parseIndexes reads completedIndexes; malformed parts are skipped.
func parseIndexes(s string) []int {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				continue
			}
		}
		for i := a; i <= b && i-a < 1_000_000; i++ {
			out = append(out, i)
		}
	}
	return out
}
