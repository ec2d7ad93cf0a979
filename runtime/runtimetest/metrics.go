package runtimetest

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// podMetrics returns the pod's entry in PodMetrics, and whether it has one.
func podMetrics(t *testing.T, rt runtime.Runtime, uid string) (runtime.PodMetrics, bool) {
	t.Helper()
	pods, err := rt.PodMetrics(context.Background())
	if err != nil {
		t.Fatalf("PodMetrics: %v", err)
	}
	for _, p := range pods {
		if p.UID == uid {
			return p, true
		}
	}
	return runtime.PodMetrics{}, false
}

// testPodMetrics: the running containers of a running pod are measured, each with the ID of its
// run and a CPU time that only grows; ended and removed pods are not listed.
func testPodMetrics(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "measured", "serve", "8080")
	spec.Pod.Spec.Containers = append(spec.Pod.Spec.Containers,
		manifests.Container{Name: "tick", Image: h.Image, ImagePullPolicy: manifests.PullIfNotPresent, Args: []string{"ticker", "5"}})
	ended := newPod(h, "ended", "exit", "0")
	ended.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	ensure(t, rt, spec)
	ensure(t, rt, ended)
	st := waitFor(t, rt, spec.UID, "both containers running", 30*time.Second, func(s manifests.PodStatus) bool {
		return len(s.ContainerStatuses) == 2 && s.ContainerStatuses[0].State.Running != nil && s.ContainerStatuses[1].State.Running != nil
	})
	waitFor(t, rt, ended.UID, "Succeeded", 30*time.Second, func(s manifests.PodStatus) bool { return s.Phase == manifests.PodSucceeded })
	ids := map[string]string{}
	for _, cs := range st.ContainerStatuses {
		ids[cs.Name] = cs.ContainerID
	}

	first, ok := podMetrics(t, rt, spec.UID)
	if !ok {
		t.Fatal("PodMetrics does not list the running pod")
	}
	if first.Namespace != "default" || first.Name != "measured" || len(first.Containers) != 2 ||
		first.Containers[0].Name != "app" || first.Containers[1].Name != "tick" {
		t.Fatalf("PodMetrics = %+v; want default/measured with containers app and tick, by name", first)
	}
	for _, c := range first.Containers {
		if c.ID != ids[c.Name] || c.Time.IsZero() || c.MemoryWorkingSet < 0 {
			t.Errorf("container %s: %+v; want ID %s, a time and a working set >= 0", c.Name, c, ids[c.Name])
		}
	}
	if _, ok := podMetrics(t, rt, ended.UID); ok {
		t.Error("PodMetrics lists a pod that has ended")
	}
	time.Sleep(100 * time.Millisecond)
	second, _ := podMetrics(t, rt, spec.UID)
	for i, c := range second.Containers {
		was := first.Containers[i]
		if c.ID != was.ID || c.CPUUsageNanos < was.CPUUsageNanos || !c.Time.After(was.Time) {
			t.Errorf("container %s measured again: %+v after %+v; want the same run, CPU time not less, a later time", c.Name, c, was)
		}
	}

	zero := time.Duration(0)
	if err := rt.RemovePod(context.Background(), spec.UID, &zero); err != nil {
		t.Fatal(err)
	}
	if _, ok := podMetrics(t, rt, spec.UID); ok {
		t.Error("PodMetrics lists a removed pod")
	}
}
