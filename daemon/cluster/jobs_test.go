package cluster

import (
	"testing"

	"github.com/shoal-dev/shoal/manifests"
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
