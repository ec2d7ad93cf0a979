package cluster

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

func jobYAML(name, spec, args string) string {
	return "apiVersion: batch/v1\nkind: Job\nmetadata: {name: " + name + "}\nspec:\n" + spec +
		"  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: registry.local/app:v1\n        args: " + args + "\n"
}

// TestJobRunsToCompletion runs a Job through the master and an agent: its pods succeed, the
// master records its status, and the commit converges once the Job is Complete.
func TestJobRunsToCompletion(t *testing.T) {
	c := newTestCluster(t)
	one := c.git.commit("", "job", map[string]string{"job.yaml": jobYAML("batch", "  completions: 2\n  parallelism: 2\n  completionMode: Indexed\n", `["print", "index=$(JOB_COMPLETION_INDEX)"]`)})
	c.push(one)
	s := c.waitFor("the Job complete", func(s *Snapshot) bool { return s.Converged == one })
	j := s.Jobs["default/batch"]
	if !j.Condition(manifests.JobComplete) || j.Succeeded != 2 || j.CompletionTime == nil {
		t.Fatalf("job status %+v, want Complete with 2 succeeded", j.JobStatus)
	}
	for _, p := range s.Pods() {
		if st := s.Statuses[p.UID]; st.Status.Phase != manifests.PodSucceeded {
			t.Errorf("pod %s is %s, want Succeeded", p.Pod.Name, st.Status.Phase)
		}
	}
}

// TestCronJobRunsOnSchedule runs a CronJob every minute through the master and an agent: each
// minute gets one Job, named for the minute, and its pod succeeds.
func TestCronJobRunsOnSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the next minute")
	}
	c := newTestCluster(t)
	cron := "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: tick}\nspec:\n  schedule: \"* * * * *\"\n  jobTemplate:\n    spec:\n" +
		"      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: registry.local/app:v1\n            args: [\"exit\", \"0\"]\n"
	one := c.git.commit("", "cron", map[string]string{"cron.yaml": cron})
	c.push(one)
	s := c.waitForWithin("a scheduled Job complete", 75*time.Second, func(s *Snapshot) bool {
		cj := s.CronJobs["default/tick"]
		return len(cj.Runs) == 1 && s.Jobs["default/"+cj.Runs[0].Job.Name].Condition(manifests.JobComplete)
	})
	cj := s.CronJobs["default/tick"]
	run := cj.Runs[0]
	if want := reconcile.CronJobJobName("tick", run.Scheduled); run.Job.Name != want || run.Scheduled.Second() != 0 {
		t.Errorf("job %s for %s, want %s at a whole minute", run.Job.Name, run.Scheduled, want)
	}
	if cj.LastScheduleTime == nil || !cj.LastScheduleTime.Equal(run.Scheduled) || cj.LastSuccessfulTime == nil {
		t.Errorf("cronjob status %+v", cj.CronJobStatus)
	}
	list, err := s.ObjectList("Job", Filter{Namespace: "default", Selector: manifests.Everything()})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("shoal get jobs lists %d Jobs (%v), want the CronJob's one", len(list.Items), err)
	}
	// The commit converged although the CronJob's Jobs come and go.
	if s.Converged != one {
		t.Errorf("converged %q, want %s", s.Converged, one)
	}
}
