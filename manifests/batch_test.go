package manifests

import (
	"strings"
	"testing"
	"time"
)

const jobPod = `  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: example.com/job:1}]
`

func TestJobRules(t *testing.T) {
	head := "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n"
	tests := []struct {
		name, spec string
		want       []string
	}{
		{"valid", "  completions: 3\n  parallelism: 2\n  completionMode: Indexed\n  activeDeadlineSeconds: 60\n" + jobPod, nil},
		{"restartPolicy Always", "  template:\n    spec:\n      containers: [{name: main, image: example.com/job:1}]\n",
			[]string{"a.yaml:6: spec.template.spec.restartPolicy: a Job's pods must have restartPolicy OnFailure or Never, not Always: set spec.template.spec.restartPolicy"}},
		{"negative counts", "  completions: -1\n  parallelism: -2\n  backoffLimit: -3\n  activeDeadlineSeconds: 0\n" + jobPod, []string{
			"a.yaml:5: spec.completions: must be 0 or more, is -1",
			"a.yaml:6: spec.parallelism: must be 0 or more, is -2",
			"a.yaml:7: spec.backoffLimit: must be 0 or more, is -3",
			"a.yaml:8: spec.activeDeadlineSeconds: must be more than 0, is 0",
		}},
		{"indexed without completions", "  parallelism: 2\n  completionMode: Indexed\n" + jobPod,
			[]string{"a.yaml:4: spec.completions: required when completionMode is Indexed: the Job runs one pod per index, 0 to completions-1"}},
		{"selector without manualSelector", "  selector: {matchLabels: {a: b}}\n" + jobPod,
			[]string{"a.yaml:5: spec.selector: a Job's selector is generated from its name; remove spec.selector, or set manualSelector: true to choose it yourself"}},
		{"pod failure policy", `  podFailurePolicy:
    rules:
    - action: FailIndex
      onExitCodes: {operator: In, values: [0, 3, 2]}
    - action: Count
    - action: Ignore
      onExitCodes: {containerName: other, operator: Between, values: [1]}
      onPodConditions: [{type: DisruptionTarget}]
` + jobPod, []string{
			"a.yaml:7: spec.podFailurePolicy.rules[0].action: FailIndex needs backoffLimitPerIndex, which Shoal does not support yet; use FailJob or Count",
			"a.yaml:8: spec.podFailurePolicy.rules[0].onExitCodes.values[0]: 0 may not be listed with In: a container that exits 0 has not failed",
			"a.yaml:8: spec.podFailurePolicy.rules[0].onExitCodes.values[2]: exit codes must be listed in increasing order without repeats; 2 follows 3",
			"a.yaml:9: spec.podFailurePolicy.rules[1]: needs onExitCodes or onPodConditions",
			"a.yaml:10: spec.podFailurePolicy.rules[2]: may have onExitCodes or onPodConditions, not both",
			"a.yaml:11: spec.podFailurePolicy.rules[2].onExitCodes.containerName: no container of the template is named \"other\"",
			"a.yaml:11: spec.podFailurePolicy.rules[2].onExitCodes.operator: \"Between\" is not one of In, NotIn",
		}},
		{"pod failure policy needs Never", "  podFailurePolicy:\n    rules: [{action: FailJob, onExitCodes: {operator: In, values: [1]}}]\n" +
			strings.Replace(jobPod, "Never", "OnFailure", 1),
			[]string{"a.yaml:5: spec.podFailurePolicy: a pod failure policy needs the pods' restartPolicy to be Never; set spec.template.spec.restartPolicy: Never"}},
		{"not yet", "  backoffLimitPerIndex: 1\n" + jobPod,
			[]string{"a.yaml:5: spec.backoffLimitPerIndex: supported by Kubernetes, not by Shoal yet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, head+tt.spec, tt.want) })
	}
}

func TestJobDefaults(t *testing.T) {
	objs, errs := DecodeFile("a.yaml", []byte("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n"+jobPod), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	s := objs[0].(*Job).Spec
	if *s.Completions != 1 || *s.Parallelism != 1 || *s.BackoffLimit != 6 || *s.CompletionMode != NonIndexedCompletion ||
		*s.Suspend || *s.PodReplacementPolicy != TerminatingOrFailed {
		t.Errorf("defaults %+v", s)
	}
	// A work queue: parallelism without completions keeps completions unset.
	objs, _ = DecodeFile("a.yaml", []byte("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  parallelism: 3\n"+jobPod), LoadOptions{})
	if s := objs[0].(*Job).Spec; s.Completions != nil || *s.Parallelism != 3 {
		t.Errorf("work queue defaults: completions %v, parallelism %d", s.Completions, *s.Parallelism)
	}
}

func TestCronJobRules(t *testing.T) {
	doc := func(name, spec string) string {
		return "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: " + name + "}\nspec:\n" + spec +
			"  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: main, image: example.com/job:1}]\n"
	}
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"valid", doc("nightly", "  schedule: \"30 2 * * *\"\n  timeZone: Europe/Berlin\n  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 200\n"), nil},
		{"descriptor", doc("hourly", "  schedule: \"@hourly\"\n"), nil},
		{"bad schedule", doc("c", "  schedule: \"61 * * * *\"\n"), []string{
			"a.yaml:5: spec.schedule: \"61 * * * *\" is not a cron schedule: end of range (61) above maximum (59): 61; use five fields (minute hour day-of-month month day-of-week) or a descriptor such as @hourly"}},
		{"six fields", doc("c", "  schedule: \"0 30 2 * * *\"\n"), []string{
			"a.yaml:5: spec.schedule: \"0 30 2 * * *\" is not a cron schedule: expected exactly 5 fields, found 6: [0 30 2 * * *]; use five fields (minute hour day-of-month month day-of-week) or a descriptor such as @hourly"}},
		{"TZ in schedule", doc("c", "  schedule: \"TZ=UTC 0 * * * *\"\n"), []string{
			"a.yaml:5: spec.schedule: may not name a time zone (TZ= or CRON_TZ=); set spec.timeZone instead"}},
		{"bad time zone", doc("c", "  schedule: \"@daily\"\n  timeZone: Mars/Olympus\n"), []string{
			"a.yaml:6: spec.timeZone: unknown time zone \"Mars/Olympus\": use an IANA name such as Europe/Berlin or Etc/UTC"}},
		{"missing schedule and policy", doc("c", "  concurrencyPolicy: Sometimes\n  successfulJobsHistoryLimit: -1\n"), []string{
			"a.yaml:4: spec.schedule: required, in cron syntax such as \"*/5 * * * *\" or \"@daily\"",
			"a.yaml:5: spec.concurrencyPolicy: \"Sometimes\" is not one of Allow, Forbid, Replace",
			"a.yaml:6: spec.successfulJobsHistoryLimit: must be 0 or more, is -1"}},
		{"long name", doc(strings.Repeat("a", 53), "  schedule: \"@daily\"\n"), []string{
			"a.yaml:3: metadata.name: a CronJob's name may be at most 52 characters (its Jobs add a suffix), is 53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, tt.doc, tt.want) })
	}
}

func TestParseScheduleTimeZone(t *testing.T) {
	s, err := ParseSchedule("30 2 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	if got, want := s.Next(from), time.Date(2026, 7, 1, 0, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next run %s, want %s (02:30 CEST)", got, want)
	}
}

func TestHookAnnotations(t *testing.T) {
	doc := func(ann string) string {
		return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  annotations: {" + ann + "}\nspec:\n" + jobPod
	}
	checkErrors(t, doc(`argocd.argoproj.io/hook: PreSync`), nil)
	checkErrors(t, doc(`helm.sh/hook: "pre-install,post-upgrade"`), nil)
	checkErrors(t, doc(`argocd.argoproj.io/hook: SyncFail`), []string{
		`a.yaml:5: metadata.annotations[argocd.argoproj.io/hook]: hook "SyncFail" runs on an Argo CD sync event that Shoal does not have; Shoal applies PreSync, Sync and PostSync hooks with the rest of the commit: use one of those or remove the annotation`})
	checkErrors(t, doc(`helm.sh/hook: test`), []string{
		`a.yaml:5: metadata.annotations[helm.sh/hook]: hook "test" runs on a Helm release event that Shoal does not have; Shoal applies install and upgrade hooks with the rest of the commit: use one of those or remove the annotation`})
}

func TestHookWarning(t *testing.T) {
	files := map[string]string{"migrate.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n" +
		"    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\nspec:\n" + jobPod}
	set, err := loadMap(t, files)
	if err != nil {
		t.Fatal(err)
	}
	want := "migrate.yaml:6: warning: metadata.annotations[argocd.argoproj.io/hook]: hook PreSync is applied with the rest of the commit: " +
		"Shoal has no sync phases, so it runs neither before nor after the other objects, and a hook Job runs once per change of its template, " +
		"not on every sync; argocd.argoproj.io/hook-delete-policy has no effect (ttlSecondsAfterFinished deletes a finished Job's pods)"
	if got := set.Warnings.Warnings(); len(got) != 1 || got[0] != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

func TestJobGenerateName(t *testing.T) {
	doc := func(image string) string {
		return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n  annotations: {argocd.argoproj.io/hook: PreSync}\nspec:\n" +
			strings.Replace(jobPod, "example.com/job:1", image, 1)
	}
	name := func(image string) string {
		objs, errs := DecodeFile("a.yaml", []byte(doc(image)), LoadOptions{})
		if errs != nil {
			t.Fatal(errs)
		}
		return objs[0].GetObjectMeta().Name
	}
	a, again, b := name("example.com/job:1"), name("example.com/job:1"), name("example.com/job:2")
	if !strings.HasPrefix(a, "migrate-") || len(a) != len("migrate-")+5 || a != again || a == b {
		t.Errorf("generated names %q, %q, %q: want migrate- and 5 characters, the same for the same Job, another for a changed one", a, again, b)
	}
}
