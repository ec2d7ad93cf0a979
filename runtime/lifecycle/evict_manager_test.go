package lifecycle_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// meteredFake is the fake driver with a scripted storage meter.
type meteredFake struct {
	*fake.Driver
	mu  sync.Mutex
	use map[string]lifecycle.PodStorage
}

func (m *meteredFake) PodStorage(_ context.Context, uid string) (lifecycle.PodStorage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.use[uid]
	if !ok {
		return lifecycle.PodStorage{}, runtime.ErrNotFound
	}
	return u, nil
}

func (m *meteredFake) set(uid string, u lifecycle.PodStorage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.use[uid] = u
}

func storagePod(t *testing.T, uid string) *runtime.PodSpec {
	t.Helper()
	limit, err := manifests.ParseQuantity("1Mi")
	if err != nil {
		t.Fatal(err)
	}
	pod := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: "writer", Namespace: "default"},
		Spec: manifests.PodSpec{Containers: []manifests.Container{{Name: "app", Image: "testapp", Args: []string{"serve"},
			Resources: manifests.ResourceRequirements{Limits: manifests.ResourceList{manifests.ResourceEphemeralStorage: limit}}}}}}
	manifests.SetDefaults(pod)
	return &runtime.PodSpec{UID: uid, Pod: pod}
}

func waitPod(t *testing.T, rt runtime.Runtime, uid string, what string, ok func(manifests.PodStatus) bool) manifests.PodStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := rt.PodStatus(context.Background(), uid)
		if err == nil && ok(st.Status) {
			return st.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not %s: %+v (%v)", uid, what, st.Status, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestManagerEvictsOverStorageLimit(t *testing.T) {
	d := &meteredFake{Driver: fake.New(fake.TestAppImage("testapp")), use: map[string]lifecycle.PodStorage{}}
	stateDir := t.TempDir()
	open := func() *lifecycle.Manager {
		m, err := lifecycle.New(lifecycle.Config{Driver: d, EvictionInterval: 10 * time.Millisecond, StateDir: stateDir,
			Node: lifecycle.NodeInfo{Name: "n1", HostIPs: []string{"192.0.2.10"}}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	rt := open()
	ctx := context.Background()
	within, over := storagePod(t, "within"), storagePod(t, "over")
	for _, p := range []*runtime.PodSpec{within, over} {
		if err := rt.EnsurePod(ctx, p); err != nil {
			t.Fatal(err)
		}
		waitPod(t, rt, p.UID, "running", func(s manifests.PodStatus) bool { return s.Phase == manifests.PodRunning })
	}
	d.set("within", lifecycle.PodStorage{Containers: map[string]int64{"app": 1 << 20}})
	d.set("over", lifecycle.PodStorage{Containers: map[string]int64{"app": 1<<20 + 1}})
	st := waitPod(t, rt, "over", "evicted", func(s manifests.PodStatus) bool { return s.Phase == manifests.PodFailed })
	if st.Reason != "Evicted" || st.Message != "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi." {
		t.Errorf("evicted pod: reason %q message %q", st.Reason, st.Message)
	}
	if cs := st.ContainerStatuses[0]; cs.State.Terminated == nil || cs.Ready {
		t.Errorf("container of the evicted pod: %+v", cs)
	}
	if st.HostIP != "192.0.2.10" {
		t.Errorf("hostIP %q", st.HostIP)
	}
	ctrs, _ := d.Containers(ctx, "over")
	for _, c := range ctrs {
		if c.Status == lifecycle.ContainerRunning {
			t.Errorf("container %s of the evicted pod still runs", c.ID)
		}
	}
	time.Sleep(100 * time.Millisecond) // many measurements later
	if st, _ := rt.PodStatus(ctx, "within"); st.Status.Phase != manifests.PodRunning {
		t.Errorf("the pod within its limit is %s", st.Status.Phase)
	}
	if st, _ := rt.PodStatus(ctx, "over"); st.Status.ContainerStatuses[0].RestartCount != 0 || st.Status.Phase != manifests.PodFailed {
		t.Errorf("the evicted pod was restarted: %+v", st.Status)
	}

	// A new process does not start the evicted pod again.
	rt.Close()
	rt = open()
	defer rt.Close()
	if err := rt.EnsurePod(ctx, over); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if st, err := rt.PodStatus(ctx, "over"); err != nil || st.Status.Phase != manifests.PodFailed || st.Status.Reason != "Evicted" {
		t.Errorf("after a restart the evicted pod is %+v (%v)", st.Status, err)
	}
	ctrs, _ = d.Containers(ctx, "over")
	for _, c := range ctrs {
		if c.Status == lifecycle.ContainerRunning {
			t.Errorf("container %s of the evicted pod was started again", c.ID)
		}
	}
	zero := time.Duration(0)
	if err := rt.RemovePod(ctx, "over", &zero); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.PodStatus(ctx, "over"); err == nil {
		t.Errorf("the removed evicted pod is still listed")
	}
}
