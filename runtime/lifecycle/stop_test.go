package lifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

const img = "localhost/testapp:v1"

func newManager(t *testing.T, d *fake.Driver) *lifecycle.Manager {
	t.Helper()
	m, err := lifecycle.New(lifecycle.Config{Driver: d, Backoff: lifecycle.Backoff{Base: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

var seq atomic.Int64

func pod(name string, grace int64, inits []manifests.Container, apps ...manifests.Container) *runtime.PodSpec {
	n := seq.Add(1)
	p := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default"},
		Spec: manifests.PodSpec{InitContainers: inits, Containers: apps, TerminationGracePeriodSeconds: &grace}}
	manifests.SetDefaults(p)
	return &runtime.PodSpec{UID: fmt.Sprintf("%s-%d", name, n), Pod: p}
}

func ctr(name string, args ...string) manifests.Container {
	return manifests.Container{Name: name, Image: img, ImagePullPolicy: manifests.PullIfNotPresent, Args: args}
}

func sidecar(name string, args ...string) manifests.Container {
	c := ctr(name, args...)
	always := manifests.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

func waitRunning(t *testing.T, m *lifecycle.Manager, uid string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := m.PodStatus(context.Background(), uid)
		running := 0
		if err == nil {
			for _, c := range append(st.Status.InitContainerStatuses, st.Status.ContainerStatuses...) {
				if c.State.Running != nil && c.Started != nil && *c.Started {
					running++
				}
			}
		}
		if running == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pod %s: %d containers not running after 10 s", uid, n)
}

// stopOrder returns the containers of the pod in the order StopContainer reached them.
func stopOrder(d *fake.Driver, uid string) []string {
	var out []string
	for _, s := range d.Stops() {
		if s.Pod == uid {
			out = append(out, s.Container)
		}
	}
	return out
}

func TestRemovePodStopsSidecarsAfterAppsInReverseOrder(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("left by an earlier runtime %v", reopen), func(t *testing.T) {
			d := fake.New(fake.TestAppImage(img))
			m := newManager(t, d)
			// The apps' preStop hooks hold them a little, so that stopping everything at
			// once would stop the sidecars first.
			app := ctr("app", "sleep", "inf")
			app.Lifecycle = &manifests.Lifecycle{PreStop: &manifests.LifecycleHandler{Sleep: &manifests.SleepAction{Seconds: 1}}}
			spec := pod("order", 10, []manifests.Container{sidecar("s1", "sleep", "inf"), sidecar("s2", "sleep", "inf")}, app, ctr("other", "sleep", "inf"))
			if err := m.EnsurePod(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			waitRunning(t, m, spec.UID, 4)
			if reopen {
				m.Close()
				m = newManager(t, d)
			}
			if err := m.RemovePod(context.Background(), spec.UID, nil); err != nil {
				t.Fatal(err)
			}
			got := stopOrder(d, spec.UID)
			apps, sidecars := got[:2], got[2:]
			slices.Sort(apps)
			if !slices.Equal(apps, []string{"app", "other"}) {
				t.Fatalf("stop order %v: want the app containers first", got)
			}
			if !reopen && !slices.Equal(sidecars, []string{"s2", "s1"}) {
				t.Errorf("stop order %v: want the sidecars last, in reverse order", got)
			}
		})
	}
}

func TestStopGraceCoversPreStop(t *testing.T) {
	sleepFor := func(s int64) *manifests.Lifecycle {
		return &manifests.Lifecycle{PreStop: &manifests.LifecycleHandler{Sleep: &manifests.SleepAction{Seconds: s}}}
	}
	zero, five := time.Duration(0), 5*time.Second
	tests := []struct {
		name      string
		grace     int64          // the pod's
		override  *time.Duration // RemovePod's
		lifecycle *manifests.Lifecycle
		stopGrace time.Duration // what StopContainer gets, within 100 ms
		took      time.Duration // how long the hook held SIGTERM back
	}{
		{"no hook: the whole grace period", 10, nil, nil, 10 * time.Second, 0},
		{"what the hook left", 10, nil, sleepFor(1), 9 * time.Second, time.Second},
		{"at least 2 s after the hook", 2, nil, sleepFor(1), 2 * time.Second, time.Second},
		{"the hook is cut at the grace period", 1, nil, sleepFor(3), 2 * time.Second, time.Second},
		{"the caller's grace period", 30, &five, sleepFor(1), 4 * time.Second, time.Second},
		{"grace 0: no hook, killed at once", 30, &zero, sleepFor(3), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := fake.New(fake.TestAppImage(img))
			m := newManager(t, d)
			app := ctr("app", "sleep", "inf")
			app.Lifecycle = tt.lifecycle
			spec := pod("grace", tt.grace, nil, app)
			if err := m.EnsurePod(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			waitRunning(t, m, spec.UID, 1)
			start := time.Now()
			if err := m.RemovePod(context.Background(), spec.UID, tt.override); err != nil {
				t.Fatal(err)
			}
			var stop fake.Stop
			for _, s := range d.Stops() {
				if s.Pod == spec.UID {
					stop = s
					break
				}
			}
			if stop.Container != "app" {
				t.Fatalf("StopContainer was not called: %+v", d.Stops())
			}
			if diff := stop.Grace - tt.stopGrace; diff < -100*time.Millisecond || diff > 100*time.Millisecond {
				t.Errorf("StopContainer got grace %v, want %v", stop.Grace, tt.stopGrace)
			}
			if held := stop.At.Sub(start); held < tt.took-50*time.Millisecond || held > tt.took+300*time.Millisecond {
				t.Errorf("SIGTERM came %v after the removal began, want %v", held, tt.took)
			}
		})
	}
}

func TestLivenessRestartGetsProbeGracePeriod(t *testing.T) {
	d := fake.New(fake.TestAppImage(img))
	m := newManager(t, d)
	app := ctr("app", "sleep", "inf")
	seven := int64(7)
	app.LivenessProbe = &manifests.Probe{
		ProbeHandler:  manifests.ProbeHandler{Exec: &manifests.ExecAction{Command: []string{"/testapp", "exit", "1"}}},
		PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1, TerminationGracePeriodSeconds: &seven,
	}
	app.Lifecycle = &manifests.Lifecycle{PreStop: &manifests.LifecycleHandler{Sleep: &manifests.SleepAction{Seconds: 1}}}
	spec := pod("liveness-grace", 30, nil, app)
	if err := m.EnsurePod(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zero := time.Duration(0); m.RemovePod(context.Background(), spec.UID, &zero) })
	deadline := time.Now().Add(10 * time.Second)
	for len(stopOrder(d, spec.UID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the liveness probe did not stop the container")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g := d.Stops()[0].Grace; g < 5900*time.Millisecond || g > 6100*time.Millisecond {
		t.Errorf("a liveness restart with a 1 s preStop hook and the probe's 7 s grace gave StopContainer %v, want 6 s", g)
	}
}

func TestPostStartFailureIsReported(t *testing.T) {
	d := fake.New(fake.TestAppImage(img))
	m := newManager(t, d)
	app := ctr("app", "sleep", "inf")
	app.Lifecycle = &manifests.Lifecycle{PostStart: &manifests.LifecycleHandler{TCPSocket: &manifests.TCPSocketAction{Port: manifests.FromInt(80)}}}
	spec := pod("poststart-tcp", 30, nil, app)
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	if err := m.EnsurePod(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zero := time.Duration(0); m.RemovePod(context.Background(), spec.UID, &zero) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := m.PodStatus(context.Background(), spec.UID)
		if err == nil && len(st.Status.ContainerStatuses) == 1 {
			if term := st.Status.ContainerStatuses[0].State.Terminated; term != nil {
				want := `FailedPostStartHook: PostStart hook of container "app" in pod default/poststart-tcp failed: tcpSocket is not supported`
				if len(term.Message) < len(want) || term.Message[:len(want)] != want {
					t.Errorf("terminated message %q, want it to start with %q", term.Message, want)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container was not killed after its postStart hook failed: %+v %v", st.Status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
