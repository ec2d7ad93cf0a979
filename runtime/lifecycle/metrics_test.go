package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// brokenMeter is the fake driver whose measurement of one pod's containers fails.
type brokenMeter struct {
	*fake.Driver
	pod string
}

func (b *brokenMeter) ContainerUsage(ctx context.Context, id string) (lifecycle.ContainerUsage, error) {
	ctrs, _ := b.Containers(ctx, b.pod)
	for _, c := range ctrs {
		if c.ID == id {
			return lifecycle.ContainerUsage{}, errors.New("cgroup unreadable")
		}
	}
	return b.Driver.ContainerUsage(ctx, id)
}

func metricsPod(uid, name string, containers ...string) *runtime.PodSpec {
	pod := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default"}}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, manifests.Container{Name: c, Image: "testapp", Args: []string{"serve"}})
	}
	manifests.SetDefaults(pod)
	return &runtime.PodSpec{UID: uid, Pod: pod}
}

// PodMetrics lists every running pod with its running containers, also the pods of an earlier
// process; a pod it cannot measure whole is left out, and the error names it.
func TestManagerPodMetrics(t *testing.T) {
	d := &brokenMeter{Driver: fake.New(fake.TestAppImage("testapp")), pod: "broken"}
	rt, err := lifecycle.New(lifecycle.Config{Driver: d})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	web, db := metricsPod("web", "web", "app", "proxy"), metricsPod("db", "db", "db")
	for _, p := range []*runtime.PodSpec{web, db} {
		if err := rt.EnsurePod(ctx, p); err != nil {
			t.Fatal(err)
		}
		waitPod(t, rt, p.UID, "running", func(s manifests.PodStatus) bool { return s.Phase == manifests.PodRunning })
	}
	d.SetUsage("web", "proxy", 0, 8<<20)
	d.SetUsage("db", "db", 0, 300<<20)
	pods, err := rt.PodMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 || pods[0].Name != "db" || pods[1].Name != "web" || len(pods[1].Containers) != 2 ||
		pods[1].Containers[0].Name != "app" || pods[1].Containers[1].MemoryWorkingSet != 8<<20 || pods[0].Containers[0].MemoryWorkingSet != 300<<20 {
		t.Fatalf("PodMetrics = %+v; want db, then web with app and proxy (8Mi)", pods)
	}

	// The pods outlive the Manager: a new one measures them before they are ensured again.
	rt.Close()
	rt, err = lifecycle.New(lifecycle.Config{Driver: d})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	broken := metricsPod("broken", "broken", "app")
	if err := rt.EnsurePod(ctx, broken); err != nil {
		t.Fatal(err)
	}
	waitPod(t, rt, "broken", "running", func(s manifests.PodStatus) bool { return s.Phase == manifests.PodRunning })
	pods, err = rt.PodMetrics(ctx)
	if err == nil || !strings.Contains(err.Error(), "default/broken") || !strings.Contains(err.Error(), "cgroup unreadable") {
		t.Errorf("PodMetrics error %v; want it to name default/broken and why", err)
	}
	if len(pods) != 2 || pods[0].UID != "db" || pods[1].UID != "web" {
		t.Errorf("PodMetrics = %+v; want the pods of the earlier Manager, without the broken one", pods)
	}

	zero := time.Duration(0)
	for _, uid := range []string{"web", "db", "broken"} {
		if err := rt.RemovePod(ctx, uid, &zero); err != nil {
			t.Fatal(err)
		}
	}
	if pods, err := rt.PodMetrics(ctx); err != nil || len(pods) != 0 {
		t.Errorf("PodMetrics after removal = %+v, %v; want none", pods, err)
	}
}
