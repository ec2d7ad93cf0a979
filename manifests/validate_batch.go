package manifests

import (
	"strings"
	"time"
	// The time zone database travels in the binary, so that a CronJob's
	// timeZone means the same on every node, whatever it has installed.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Kubernetes' limits on Jobs.
const (
	maxIndexedCompletions = 100_000
	maxPodFailureRules    = 20
	maxExitCodeValues     = 255
	// maxCronJobNameLen leaves room for the 11-character suffix of the
	// Jobs a CronJob makes.
	maxCronJobNameLen = 52
)

// cronParser parses schedules as Kubernetes' CronJob controller does: five
// fields, or a descriptor such as @hourly.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a CronJob schedule in the given time zone ("" for
// the daemon's local time zone).
func ParseSchedule(schedule, timeZone string) (cron.Schedule, error) {
	if timeZone != "" {
		schedule = "CRON_TZ=" + timeZone + " " + schedule
	}
	return cronParser.Parse(schedule)
}

func (v *validator) job(j *Job) {
	v.jobSpec(&j.Spec, "spec", j.Name)
}

// jobSpec checks a Job's spec, or a CronJob's job template at p.
func (v *validator) jobSpec(s *JobSpec, p, name string) {
	nonNegative := func(f string, x *int32) {
		if x != nil && *x < 0 {
			v.errf(p+"."+f, "must be 0 or more, is %d", *x)
		}
	}
	nonNegative("parallelism", s.Parallelism)
	nonNegative("completions", s.Completions)
	nonNegative("backoffLimit", s.BackoffLimit)
	nonNegative("ttlSecondsAfterFinished", s.TTLSecondsAfterFinished)
	if d := s.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		v.errf(p+".activeDeadlineSeconds", "must be more than 0, is %d", *d)
	}
	tp := p + ".template"
	manual := s.ManualSelector != nil && *s.ManualSelector
	switch {
	case !manual && s.Selector != nil:
		v.errf(p+".selector", "a Job's selector is generated from its name; remove spec.selector, or set manualSelector: true to choose it yourself")
	case manual && (s.Selector == nil || (len(s.Selector.MatchLabels) == 0 && len(s.Selector.MatchExpressions) == 0)):
		v.errf(p+".selector", "required with manualSelector: true; select the template's pods, such as matchLabels: {app: %s}", name)
	case manual:
		sel, err := SelectorFromLabelSelector(s.Selector)
		if err != nil {
			v.errf(p+".selector", "%v", err)
		} else if !sel.Matches(s.Template.Labels) {
			v.errf(p+".selector", "selector %q does not match the template labels (%s)", sel, formatLabels(s.Template.Labels))
		}
	}
	v.labels(s.Template.Labels, tp+".metadata.labels")
	v.annotations(s.Template.Annotations, tp+".metadata.annotations")
	v.podSpec(&s.Template.Spec, tp+".spec")
	rp := s.Template.Spec.RestartPolicy
	if rp != RestartPolicyOnFailure && rp != RestartPolicyNever {
		if rp == "" {
			rp = RestartPolicyAlways
		}
		v.errf(tp+".spec.restartPolicy", "a Job's pods must have restartPolicy OnFailure or Never, not %s: set spec.template.spec.restartPolicy", rp)
	}
	mode := NonIndexedCompletion
	if s.CompletionMode != nil {
		mode = *s.CompletionMode
	}
	switch mode {
	case NonIndexedCompletion:
	case IndexedCompletion:
		switch {
		case s.Completions == nil:
			v.errf(p+".completions", "required when completionMode is Indexed: the Job runs one pod per index, 0 to completions-1")
		case *s.Completions > maxIndexedCompletions:
			v.errf(p+".completions", "must be at most %d when completionMode is Indexed, is %d", maxIndexedCompletions, *s.Completions)
		}
		if s.Parallelism != nil && *s.Parallelism > maxIndexedCompletions {
			v.errf(p+".parallelism", "must be at most %d when completionMode is Indexed, is %d", maxIndexedCompletions, *s.Parallelism)
		}
	default:
		v.errf(p+".completionMode", "%q is not one of NonIndexed, Indexed", mode)
	}
	if rpol := s.PodReplacementPolicy; rpol != nil {
		switch *rpol {
		case TerminatingOrFailed:
			if s.PodFailurePolicy != nil {
				v.errf(p+".podReplacementPolicy", "must be Failed when podFailurePolicy is set")
			}
		case Failed:
		default:
			v.errf(p+".podReplacementPolicy", "%q is not one of TerminatingOrFailed, Failed", *rpol)
		}
	}
	if s.PodFailurePolicy != nil {
		v.podFailurePolicy(s, p+".podFailurePolicy")
	}
}

func (v *validator) podFailurePolicy(s *JobSpec, p string) {
	if s.Template.Spec.RestartPolicy != RestartPolicyNever {
		v.errf(p, "a pod failure policy needs the pods' restartPolicy to be Never; set spec.template.spec.restartPolicy: Never")
	}
	rules := s.PodFailurePolicy.Rules
	if len(rules) > maxPodFailureRules {
		v.errf(p+".rules", "at most %d rules, has %d", maxPodFailureRules, len(rules))
	}
	containers := map[string]bool{}
	for _, c := range s.Template.Spec.InitContainers {
		containers[c.Name] = true
	}
	for _, c := range s.Template.Spec.Containers {
		containers[c.Name] = true
	}
	for i, r := range rules {
		rp := idx(p+".rules", i)
		switch r.Action {
		case PodFailurePolicyActionFailJob, PodFailurePolicyActionIgnore, PodFailurePolicyActionCount:
		case PodFailurePolicyActionFailIndex:
			v.errf(rp+".action", "FailIndex needs backoffLimitPerIndex, which Shoal does not support yet; use FailJob or Count")
		case "":
			v.errf(rp+".action", "required: FailJob, Ignore or Count")
		default:
			v.errf(rp+".action", "%q is not one of FailJob, FailIndex, Ignore, Count", r.Action)
		}
		switch {
		case r.OnExitCodes == nil && len(r.OnPodConditions) == 0:
			v.errf(rp, "needs onExitCodes or onPodConditions")
		case r.OnExitCodes != nil && len(r.OnPodConditions) > 0:
			v.errf(rp, "may have onExitCodes or onPodConditions, not both")
		}
		if e := r.OnExitCodes; e != nil {
			ep := rp + ".onExitCodes"
			if e.ContainerName != nil && !containers[*e.ContainerName] {
				v.errf(ep+".containerName", "no container of the template is named %q", *e.ContainerName)
			}
			switch e.Operator {
			case PodFailurePolicyOnExitCodesOpIn, PodFailurePolicyOnExitCodesOpNotIn:
			default:
				v.errf(ep+".operator", "%q is not one of In, NotIn", e.Operator)
			}
			switch {
			case len(e.Values) == 0:
				v.errf(ep+".values", "list at least one exit code")
			case len(e.Values) > maxExitCodeValues:
				v.errf(ep+".values", "at most %d exit codes, has %d", maxExitCodeValues, len(e.Values))
			}
			for j, c := range e.Values {
				switch {
				case c == 0 && e.Operator == PodFailurePolicyOnExitCodesOpIn:
					v.errf(idx(ep+".values", j), "0 may not be listed with In: a container that exits 0 has not failed")
				case j > 0 && c <= e.Values[j-1]:
					v.errf(idx(ep+".values", j), "exit codes must be listed in increasing order without repeats; %d follows %d", c, e.Values[j-1])
				}
			}
		}
		for j, c := range r.OnPodConditions {
			cp := idx(rp+".onPodConditions", j)
			if c.Type == "" {
				v.errf(cp+".type", "required, such as DisruptionTarget")
			} else if msg := validateQualifiedName(c.Type); msg != "" {
				v.errf(cp+".type", "%s", msg)
			}
			switch c.Status {
			case ConditionTrue, ConditionFalse, ConditionUnknown:
			default:
				v.errf(cp+".status", "%q is not one of True, False, Unknown", c.Status)
			}
		}
	}
}

func (v *validator) cronJob(c *CronJob) {
	s := &c.Spec
	if len(c.Name) > maxCronJobNameLen {
		v.errf("metadata.name", "a CronJob's name may be at most %d characters (its Jobs add a suffix), is %d", maxCronJobNameLen, len(c.Name))
	}
	tz := ""
	if s.TimeZone != nil {
		tz = *s.TimeZone
		if _, err := time.LoadLocation(tz); err != nil || tz == "" || strings.EqualFold(tz, "local") {
			v.errf("spec.timeZone", "unknown time zone %q: use an IANA name such as Europe/Berlin or Etc/UTC", tz)
			tz = ""
		}
	}
	switch {
	case strings.TrimSpace(s.Schedule) == "":
		v.errf("spec.schedule", "required, in cron syntax such as \"*/5 * * * *\" or \"@daily\"")
	case strings.Contains(s.Schedule, "TZ="):
		v.errf("spec.schedule", "may not name a time zone (TZ= or CRON_TZ=); set spec.timeZone instead")
	default:
		if _, err := ParseSchedule(s.Schedule, tz); err != nil {
			v.errf("spec.schedule", "%q is not a cron schedule: %v; use five fields (minute hour day-of-month month day-of-week) or a descriptor such as @hourly", s.Schedule, err)
		}
	}
	if d := s.StartingDeadlineSeconds; d != nil && *d < 0 {
		v.errf("spec.startingDeadlineSeconds", "must be 0 or more, is %d", *d)
	}
	switch s.ConcurrencyPolicy {
	case AllowConcurrent, ForbidConcurrent, ReplaceConcurrent, "":
	default:
		v.errf("spec.concurrencyPolicy", "%q is not one of Allow, Forbid, Replace", s.ConcurrencyPolicy)
	}
	if x := s.SuccessfulJobsHistoryLimit; x != nil && *x < 0 {
		v.errf("spec.successfulJobsHistoryLimit", "must be 0 or more, is %d", *x)
	}
	if x := s.FailedJobsHistoryLimit; x != nil && *x < 0 {
		v.errf("spec.failedJobsHistoryLimit", "must be 0 or more, is %d", *x)
	}
	v.labels(s.JobTemplate.Labels, "spec.jobTemplate.metadata.labels")
	v.annotations(s.JobTemplate.Annotations, "spec.jobTemplate.metadata.annotations")
	v.jobSpec(&s.JobTemplate.Spec, "spec.jobTemplate.spec", c.Name)
}
