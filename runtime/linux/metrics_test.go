package linux_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// TestPodMetricsFromCgroups measures real containers from their cgroups: one that keeps the CPU
// busy (a line every millisecond) and one that holds 32 MiB it touched. The first one's CPU time
// grows from one measurement to the next, and both have a working set, the second one of its
// 32 MiB at least.
func TestPodMetricsFromCgroups(t *testing.T) {
	registry, ref := startRegistry(t)
	n := newNode(t, registry)
	rt := n.open(t)
	defer rt.Close()

	spec := testPod(ref, "measured")
	spec.Pod.Spec.Containers = []manifests.Container{
		{Name: "busy", Image: ref, Args: []string{"ticker", "1"}},
		{Name: "mem", Image: ref, Args: []string{"alloc", "32"}},
	}
	manifests.SetDefaults(spec.Pod)
	ensure(t, rt, spec)
	waitStatus(t, rt, spec.UID, "running", 60*time.Second, func(s manifests.PodStatus) bool {
		return len(s.ContainerStatuses) == 2 && s.ContainerStatuses[0].State.Running != nil && s.ContainerStatuses[1].State.Running != nil
	})

	measure := func() map[string]runtime.ContainerMetrics {
		t.Helper()
		pods, err := rt.PodMetrics(context.Background())
		if err != nil {
			t.Fatalf("PodMetrics: %v", err)
		}
		for _, p := range pods {
			if p.UID == spec.UID {
				out := map[string]runtime.ContainerMetrics{}
				for _, c := range p.Containers {
					out[c.Name] = c
				}
				return out
			}
		}
		t.Fatalf("PodMetrics = %+v; the pod is not there", pods)
		return nil
	}
	var first map[string]runtime.ContainerMetrics
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		first = measure()
		if first["mem"].MemoryWorkingSet >= 32<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container that holds 32 MiB has a working set of %d bytes", first["mem"].MemoryWorkingSet)
		}
	}
	time.Sleep(time.Second)
	second := measure()
	busy, was := second["busy"], first["busy"]
	dt := busy.Time.Sub(was.Time)
	t.Logf("busy: %d ns of CPU over %v (%.1f%% of a CPU), working set %d bytes; mem: working set %d bytes",
		busy.CPUUsageNanos-was.CPUUsageNanos, dt, float64(busy.CPUUsageNanos-was.CPUUsageNanos)/float64(dt)*100, busy.MemoryWorkingSet, second["mem"].MemoryWorkingSet)
	if busy.ID != was.ID || busy.CPUUsageNanos <= was.CPUUsageNanos || was.CPUUsageNanos == 0 {
		t.Errorf("CPU time of the busy container: %d then %d ns; want it to grow", was.CPUUsageNanos, busy.CPUUsageNanos)
	}
	if busy.MemoryWorkingSet <= 0 {
		t.Errorf("working set of the busy container: %d; want more than 0", busy.MemoryWorkingSet)
	}
	if m := second["mem"]; m.CPUUsageNanos == 0 || m.MemoryWorkingSet < 32<<20 {
		t.Errorf("the container holding 32 MiB: %+v; want a CPU time and a working set of 32 MiB or more", m)
	}
}
