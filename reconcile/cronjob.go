package reconcile

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// CronJobScheduledAnnotation is the annotation of a CronJob's Job that
// holds the time it was scheduled for, as Kubernetes sets it.
const CronJobScheduledAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp"

// maxMissedSchedules bounds the schedule times a CronJob looks back over;
// past it, as Kubernetes does, the CronJob warns and runs the latest.
const maxMissedSchedules = 100

// CronJobStatus is a CronJob's status as it will be once the plan is
// applied, with the Jobs it made; the master stores it and passes it back in
// State.CronJobs.
type CronJobStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Since is when the CronJob was first planned: no run is due before
	// it.
	Since time.Time `json:"since"`
	// Runs are the Jobs the CronJob made and keeps (running, or finished
	// within its history limits), oldest first. A Job keeps the template it
	// was made from.
	Runs []CronJobRun `json:"runs,omitempty"`
	// Skipped is the last schedule time reported as skipped (Forbid, a
	// missed deadline), so that it is reported once.
	Skipped time.Time `json:"skipped,omitzero"`
	manifests.CronJobStatus
}

// CronJobRun is a Job a CronJob made for one schedule time.
type CronJobRun struct {
	Scheduled time.Time      `json:"scheduled"`
	Job       *manifests.Job `json:"job"`
}

// CronJobOwner returns the Event object of a CronJob.
func CronJobOwner(namespace, name string) string {
	return "CronJob/" + namespace + "/" + name
}

// CronJobJobName names the Job a CronJob makes for a schedule time, as
// Kubernetes does: the CronJob's name and the time in minutes since the
// epoch. A time slot has one name, so it never gets two Jobs.
func CronJobJobName(cronJob string, scheduled time.Time) string {
	return cronJob + "-" + strconv.FormatInt(scheduled.Unix()/60, 10)
}

// cronJobs plans every CronJob: start the Job of a schedule time that has
// come, by its concurrency policy, drop Jobs beyond the history limits, and
// plan the Jobs it keeps. seen collects the owners of the Jobs planned.
// cjs are sorted by namespace and name.
func (p *planner) cronJobs(cjs []*manifests.CronJob, owned map[string][]*Pod, seen map[string]bool) {
	done := map[string]bool{}
	for _, cj := range cjs {
		key := cj.Namespace + "/" + cj.Name
		if done[key] {
			continue
		}
		done[key] = true
		before := map[string]bool{}
		for _, r := range p.s.CronJobs[key].Runs {
			before[r.Job.Name] = true
		}
		st := p.cronJob(cj)
		for _, r := range st.Runs {
			delete(before, r.Job.Name)
		}
		// The Jobs the CronJob dropped (history limits, Replace) go with their pods.
		for _, name := range slices.Sorted(maps.Keys(before)) {
			owner := JobOwner(cj.Namespace, name)
			if seen[owner] {
				continue
			}
			seen[owner] = true
			for _, pod := range owned[owner] {
				if !pod.Terminating || pod.Node == "" {
					p.delete(pod, DeleteJobDeleted, owner)
				}
			}
		}
		first := len(p.plan.Jobs)
		for _, run := range st.Runs {
			owner := JobOwner(run.Job.Namespace, run.Job.Name)
			if seen[owner] {
				p.event(CronJobOwner(cj.Namespace, cj.Name), EventWarning, "JobNameTaken",
					"Job "+run.Job.Name+" of the CronJob has the name of a Job in git; it does not run")
				continue
			}
			seen[owner] = true
			p.job(run.Job, owned[owner], key)
		}
		p.cronJobStatus(&st, p.plan.Jobs[first:])
		p.plan.CronJobs = append(p.plan.CronJobs, st)
	}
}

// cronJob decides the CronJob's runs for this plan.
func (p *planner) cronJob(cj *manifests.CronJob) CronJobStatus {
	key := cj.Namespace + "/" + cj.Name
	obj := CronJobOwner(cj.Namespace, cj.Name)
	st, had := p.s.CronJobs[key]
	st.Namespace, st.Name = cj.Namespace, cj.Name
	st.Runs = slices.Clone(st.Runs)
	if !had || st.Since.IsZero() {
		st.Since = p.s.Now
	}
	p.cronJobHistory(cj, &st)
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return st
	}
	tz := ""
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	sched, err := manifests.ParseSchedule(cj.Spec.Schedule, tz)
	if err != nil {
		// Validation refuses such a schedule; one that comes anyway never runs.
		p.event(obj, EventWarning, "UnparseableSchedule", "unparseable schedule "+strconv.Quote(cj.Spec.Schedule)+": "+err.Error())
		return st
	}
	earliest := st.Since
	if st.LastScheduleTime != nil && st.LastScheduleTime.After(earliest) {
		earliest = st.LastScheduleTime.Time
	}
	deadline := time.Duration(-1)
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		deadline = time.Duration(*d) * time.Second
		if from := p.s.Now.Add(-deadline); from.After(earliest) {
			earliest = from
		}
	}
	var due time.Time
	missed := 0
	for t := sched.Next(earliest); !t.IsZero() && !t.After(p.s.Now); t = sched.Next(t) {
		due = t
		if missed++; missed > maxMissedSchedules {
			// Look no further back than needed: the latest time is what runs.
			p.event(obj, EventWarning, "TooManyMissedTimes",
				"too many missed start times; set or decrease .spec.startingDeadlineSeconds or check clock skew")
			for n := sched.Next(t); !n.IsZero() && !n.After(p.s.Now); n = sched.Next(n) {
				due = n
			}
			break
		}
	}
	if next := sched.Next(p.s.Now); !next.IsZero() {
		p.requeue(next.Sub(p.s.Now))
	}
	if due.IsZero() {
		return st
	}
	report := !st.Skipped.Equal(due)
	if deadline >= 0 && p.s.Now.Sub(due) > deadline {
		if report {
			p.event(obj, EventWarning, "MissSchedule", "missed the start of "+due.UTC().Format(time.RFC3339)+" by more than startingDeadlineSeconds")
			st.Skipped = due
		}
		return st
	}
	name := CronJobJobName(cj.Name, due)
	if slices.ContainsFunc(st.Runs, func(r CronJobRun) bool { return r.Job.Name == name }) {
		return st // this time slot has its Job already
	}
	active := p.activeRuns(&st)
	switch cj.Spec.ConcurrencyPolicy {
	case manifests.ForbidConcurrent:
		if len(active) > 0 {
			// The time stays due: once the running Job ends, it starts if still
			// within startingDeadlineSeconds.
			if report {
				p.event(obj, EventNormal, "JobAlreadyActive", "not starting the Job of "+due.UTC().Format(time.RFC3339)+": concurrencyPolicy Forbid and a Job still runs")
				st.Skipped = due
			}
			return st
		}
	case manifests.ReplaceConcurrent:
		for _, name := range active {
			st.Runs = slices.DeleteFunc(st.Runs, func(r CronJobRun) bool { return r.Job.Name == name })
			p.event(obj, EventNormal, "SuccessfulDelete", "Deleted job "+name+" (concurrencyPolicy Replace)")
		}
	}
	st.Runs = append(st.Runs, CronJobRun{Scheduled: due, Job: cronJobJob(cj, name, due)})
	at := manifests.NewTime(due)
	st.LastScheduleTime = &at
	p.event(obj, EventNormal, "SuccessfulCreate", "Created job "+name)
	return st
}

// cronJobJob is the Job a CronJob makes for a schedule time: its job
// template, named for the time.
func cronJobJob(cj *manifests.CronJob, name string, scheduled time.Time) *manifests.Job {
	t := cj.Spec.JobTemplate.DeepCopy()
	ann := maps.Clone(t.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[CronJobScheduledAnnotation] = scheduled.UTC().Format(time.RFC3339)
	return &manifests.Job{
		TypeMeta: manifests.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: cj.Namespace, Labels: maps.Clone(t.Labels),
			Annotations: ann},
		Spec: t.Spec,
	}
}

// activeRuns returns the names of the CronJob's Jobs that have not
// finished, as last planned.
func (p *planner) activeRuns(st *CronJobStatus) []string {
	var out []string
	for _, r := range st.Runs {
		js, ok := p.s.Jobs[r.Job.Namespace+"/"+r.Job.Name]
		if !ok || !js.Finished() {
			out = append(out, r.Job.Name)
		}
	}
	return out
}

// cronJobHistory drops the oldest finished Jobs beyond the CronJob's
// successful and failed history limits; their pods go with them.
func (p *planner) cronJobHistory(cj *manifests.CronJob, st *CronJobStatus) {
	limit := func(x *int32, def int32) int {
		if x == nil {
			return int(def)
		}
		return int(*x)
	}
	keepOK := limit(cj.Spec.SuccessfulJobsHistoryLimit, manifests.DefaultSuccessfulJobsLimit)
	keepFailed := limit(cj.Spec.FailedJobsHistoryLimit, manifests.DefaultFailedJobsLimit)
	var ok, failed []string
	for _, r := range st.Runs {
		js, found := p.s.Jobs[r.Job.Namespace+"/"+r.Job.Name]
		switch {
		case !found:
		case js.Condition(manifests.JobComplete):
			ok = append(ok, r.Job.Name)
		case js.Condition(manifests.JobFailed):
			failed = append(failed, r.Job.Name)
		}
	}
	drop := map[string]bool{}
	for _, n := range ok[:max(len(ok)-keepOK, 0)] {
		drop[n] = true
	}
	for _, n := range failed[:max(len(failed)-keepFailed, 0)] {
		drop[n] = true
	}
	if len(drop) == 0 {
		return
	}
	st.Runs = slices.DeleteFunc(st.Runs, func(r CronJobRun) bool { return drop[r.Job.Name] })
	for _, n := range slices.Sorted(maps.Keys(drop)) {
		p.event(CronJobOwner(cj.Namespace, cj.Name), EventNormal, "SuccessfulDelete", "Deleted job "+n)
	}
}

// cronJobStatus fills in the active Jobs and the last success from the
// statuses this plan gives the CronJob's Jobs.
func (p *planner) cronJobStatus(st *CronJobStatus, jobs []JobStatus) {
	st.Active = nil
	for _, r := range st.Runs {
		var js *JobStatus
		for i := range jobs {
			if j := &jobs[i]; j.Namespace == r.Job.Namespace && j.Name == r.Job.Name {
				js = j
			}
		}
		if js == nil {
			continue
		}
		if !js.Finished() {
			st.Active = append(st.Active, manifests.ObjectReference{Kind: "Job", Namespace: r.Job.Namespace, Name: r.Job.Name, APIVersion: "batch/v1"})
		} else if js.CompletionTime != nil && (st.LastSuccessfulTime == nil || js.CompletionTime.After(st.LastSuccessfulTime.Time)) {
			at := *js.CompletionTime
			st.LastSuccessfulTime = &at
		}
	}
}
