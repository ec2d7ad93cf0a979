package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) *runtimetest.Harness {
		d := fake.New(fake.TestAppImage("localhost/testapp:v1"), fake.GRPCHealthImage("localhost/grpchealth:v1"))
		return &runtimetest.Harness{
			Open: func(t *testing.T) runtime.Runtime {
				m, err := lifecycle.New(lifecycle.Config{Driver: d, Backoff: lifecycle.Backoff{Base: 100 * time.Millisecond}})
				if err != nil {
					t.Fatal(err)
				}
				return m
			},
			Image:        "localhost/testapp:v1",
			MissingImage: "localhost/missing:v1",
			GRPCImage:    "localhost/grpchealth:v1",
		}
	})
}

// SetUsage drives what ContainerUsage reports: CPU time growing at the rate set, from what it was,
// and the memory set; a stopped container is not measured, nor an unknown one.
func TestSetUsage(t *testing.T) {
	ctx := context.Background()
	d := fake.New(fake.TestAppImage("testapp"))
	sb, err := d.CreateSandbox(ctx, lifecycle.SandboxConfig{UID: "pod-1", Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := d.EnsureImage(ctx, "testapp", manifests.PullIfNotPresent, lifecycle.PullSecrets{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.StartContainer(ctx, lifecycle.ContainerConfig{Meta: lifecycle.ContainerMeta{PodUID: "pod-1", Name: "app"}, Sandbox: sb, Image: img,
		Args: []string{fake.TestAppPath, "serve"}})
	if err != nil {
		t.Fatal(err)
	}
	measure := func() lifecycle.ContainerUsage {
		t.Helper()
		u, err := d.ContainerUsage(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := measure(); u.CPUUsageNanos != 0 || u.MemoryWorkingSet != 0 || u.Time.IsZero() {
		t.Errorf("before SetUsage: %+v, want nothing used", u)
	}
	d.SetUsage("pod-1", "app", 500, 64<<20)
	a := measure()
	time.Sleep(20 * time.Millisecond)
	b := measure()
	if want := uint64(b.Time.Sub(a.Time)) / 2; b.CPUUsageNanos-a.CPUUsageNanos != want || b.MemoryWorkingSet != 64<<20 {
		t.Errorf("at 500m: %+v then %+v; want %d ns more CPU time, 64Mi", a, b, want)
	}
	d.SetUsage("pod-1", "app", 0, 1<<20)
	c := measure()
	time.Sleep(10 * time.Millisecond)
	if e := measure(); e.CPUUsageNanos != c.CPUUsageNanos || c.CPUUsageNanos < b.CPUUsageNanos || e.MemoryWorkingSet != 1<<20 {
		t.Errorf("at 0m: %+v then %+v; want the CPU time kept and no more", c, e)
	}
	if _, err := d.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ContainerUsage(ctx, id); !errors.Is(err, runtime.ErrNotRunning) {
		t.Errorf("usage of a stopped container: %v, want ErrNotRunning", err)
	}
	if _, err := d.ContainerUsage(ctx, "nope"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("usage of an unknown container: %v, want ErrNotFound", err)
	}
}
