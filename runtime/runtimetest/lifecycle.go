package runtimetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// Cases for lifecycle hooks, sidecars, termination messages and gRPC probes.

func execHook(cmd ...string) *manifests.LifecycleHandler {
	return &manifests.LifecycleHandler{Exec: &manifests.ExecAction{Command: cmd}}
}

func sleepHook(seconds int64) *manifests.LifecycleHandler {
	return &manifests.LifecycleHandler{Sleep: &manifests.SleepAction{Seconds: seconds}}
}

// readFile reads a file in a running container with the test program, retrying while the
// container is between runs.
func readFile(t *testing.T, rt runtime.Runtime, uid, container, path string, timeout time.Duration) (string, error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var out, errb bytes.Buffer
		code, err := rt.Exec(context.Background(), uid, container, runtime.ExecOptions{Command: []string{"/testapp", "read", path}, Stdout: &out, Stderr: &errb})
		if err == nil && code == 0 {
			return out.String(), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				return "", &execError{code: code, stderr: errb.String()}
			}
			return "", err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type execError struct {
	code   int
	stderr string
}

func (e *execError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.stderr) }

func testPostStart(t *testing.T, h *Harness) {
	rt := open(t, h)
	marker := newPod(h, "poststart", "sleep", "inf")
	marker.Pod.Spec.Containers[0].Lifecycle = &manifests.Lifecycle{PostStart: execHook("/testapp", "write", "/tmp/poststart", "done")}
	slow := newPod(h, "poststart-sleep", "sleep", "inf")
	slow.Pod.Spec.Containers[0].Lifecycle = &manifests.Lifecycle{PostStart: sleepHook(2)}
	ensure(t, rt, marker)
	ensure(t, rt, slow)

	// Running only once the hook returned: what the hook wrote is there at once.
	waitFor(t, rt, marker.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	if got, err := readFile(t, rt, marker.UID, "app", "/tmp/poststart", 0); err != nil || got != "done" {
		t.Errorf("when the container shows Running its postStart hook's file holds %q (%v), want %q", got, err, "done")
	}

	st := waitFor(t, rt, slow.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	seen := time.Now()
	if d := seen.Sub(app(st).State.Running.StartedAt.Time); d < 1800*time.Millisecond {
		t.Errorf("a container with a 2 s postStart sleep showed Running %v after it started, want after the hook", d)
	}
	if a := app(st); a.RestartCount != 0 || a.LastState.Terminated != nil {
		t.Errorf("postStart sleep restarted the container: %s", Describe(st))
	}
}

func testPostStartFails(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "poststart-fails", "serve", "8080")
	spec.Pod.Spec.Containers[0].Lifecycle = &manifests.Lifecycle{PostStart: execHook("/testapp", "exit", "3")}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "a restart after the failed postStart hook", 30*time.Second, func(s manifests.PodStatus) bool {
		return app(s).RestartCount >= 1 && app(s).LastState.Terminated != nil
	})
	lt := app(st).LastState.Terminated
	if !strings.Contains(lt.Message, "FailedPostStartHook") || !strings.Contains(lt.Message, "exited with 3") {
		t.Errorf("the killed run's message %q, want FailedPostStartHook and the hook's exit status", lt.Message)
	}
	if ready(st) || st.Phase == manifests.PodSucceeded || st.Phase == manifests.PodFailed {
		t.Errorf("a pod whose postStart hook keeps failing: %s; want not ready and restarting", Describe(st))
	}
}

func testPreStopOnRestart(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "prestop", "serve", "8080")
	spec.Pod.Spec.Volumes = []manifests.Volume{{Name: "scratch", VolumeSource: manifests.VolumeSource{EmptyDir: &manifests.EmptyDirVolumeSource{}}}}
	c := &spec.Pod.Spec.Containers[0]
	c.VolumeMounts = []manifests.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	c.Lifecycle = &manifests.Lifecycle{PreStop: execHook("/testapp", "write", "/scratch/prestop", "ran")}
	c.LivenessProbe = &manifests.Probe{
		ProbeHandler:        manifests.ProbeHandler{Exec: &manifests.ExecAction{Command: []string{"/testapp", "exit", "1"}}},
		InitialDelaySeconds: 2, PeriodSeconds: 1, TimeoutSeconds: 2, SuccessThreshold: 1, FailureThreshold: 1,
	}
	ensure(t, rt, spec)
	waitFor(t, rt, spec.UID, "a restart by the liveness probe", 30*time.Second, func(s manifests.PodStatus) bool {
		return app(s).RestartCount >= 1 && app(s).State.Running != nil
	})
	if got, err := readFile(t, rt, spec.UID, "app", "/scratch/prestop", 10*time.Second); err != nil || got != "ran" {
		t.Errorf("after a liveness restart the preStop hook's file holds %q (%v), want %q", got, err, "ran")
	}
}

func testPreStopOnRemove(t *testing.T, h *Harness) {
	rt := open(t, h)
	// The hook runs before SIGTERM: the program, which exits on SIGTERM, lives through it.
	hook := newPod(h, "prestop-remove", "serve", "8080")
	grace := int64(30)
	hook.Pod.Spec.TerminationGracePeriodSeconds = &grace
	hook.Pod.Spec.Containers[0].Lifecycle = &manifests.Lifecycle{PreStop: execHook("/testapp", "sleep", "2")}
	// The grace period covers hook and SIGTERM: 4 s, 3 of them in the hook, leave 1, raised to
	// the 2 s every container gets after SIGTERM: SIGKILL comes 5 s after the removal began.
	shared := newPod(h, "prestop-grace", "ignore-term")
	short := int64(4)
	shared.Pod.Spec.TerminationGracePeriodSeconds = &short
	shared.Pod.Spec.Containers[0].Lifecycle = &manifests.Lifecycle{PreStop: sleepHook(3)}
	for _, p := range []*runtime.PodSpec{hook, shared} {
		if err := rt.EnsurePod(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		waitFor(t, rt, p.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	}
	tests := []struct {
		spec     *runtime.PodSpec
		min, max time.Duration
	}{
		{hook, 1800 * time.Millisecond, 10 * time.Second},
		{shared, 4500 * time.Millisecond, 6500 * time.Millisecond},
	}
	var wg sync.WaitGroup
	for _, tt := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := rt.RemovePod(context.Background(), tt.spec.UID, nil); err != nil {
				t.Errorf("RemovePod %s: %v", tt.spec.Pod.Name, err)
				return
			}
			if d := time.Since(start); d < tt.min || d > tt.max {
				t.Errorf("RemovePod %s took %v, want between %v and %v", tt.spec.Pod.Name, d, tt.min, tt.max)
			}
		}()
	}
	wg.Wait()
}

func testPreStopOrphan(t *testing.T, h *Harness) {
	rt := h.Open(t)
	// A 5 s hook within the pod's 2 s grace period: the removal takes about 2 s when the new
	// runtime finds both the hook and the grace period with the container.
	spec := newPod(h, "prestop-orphan", "serve", "8080")
	spec.Pod.Spec.Containers[0].Lifecycle = &manifests.Lifecycle{PreStop: execHook("/testapp", "sleep", "5")}
	if err := rt.EnsurePod(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, rt, spec.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	if err := rt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rt2 := open(t, h)
	start := time.Now()
	if err := rt2.RemovePod(context.Background(), spec.UID, nil); err != nil {
		t.Fatalf("RemovePod of a pod left by an earlier runtime: %v", err)
	}
	if d := time.Since(start); d < 1800*time.Millisecond || d > 4*time.Second {
		t.Errorf("RemovePod of a pod left by an earlier runtime took %v, want about its 2 s grace period spent in its preStop hook", d)
	}
}

func sidecar(h *Harness, name string, args ...string) manifests.Container {
	always := manifests.ContainerRestartPolicyAlways
	return manifests.Container{Name: name, Image: h.Image, ImagePullPolicy: manifests.PullIfNotPresent, Args: args, RestartPolicy: &always}
}

func initStatus(s manifests.PodStatus, name string) manifests.ContainerStatus {
	for _, c := range s.InitContainerStatuses {
		if c.Name == name {
			return c
		}
	}
	return manifests.ContainerStatus{}
}

func condition(s manifests.PodStatus, typ manifests.PodConditionType) bool {
	for _, c := range s.Conditions {
		if c.Type == typ {
			return c.Status == manifests.ConditionTrue
		}
	}
	return false
}

func testSidecarsInOrder(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "sidecars", "sleep", "inf")
	proxy := sidecar(h, "proxy", "serve", "8081")
	proxy.StartupProbe = tcpProbe(8081, 1)
	proxy.ReadinessProbe = tcpProbe(8081, 1)
	spec.Pod.Spec.InitContainers = []manifests.Container{
		proxy,
		{Name: "setup", Image: h.Image, ImagePullPolicy: manifests.PullIfNotPresent, Args: []string{"print", "setup"}},
	}
	// The app's postStart hook reaches the sidecar from the pod's network namespace.
	spec.Pod.Spec.Containers[0].Lifecycle = &manifests.Lifecycle{PostStart: &manifests.LifecycleHandler{
		HTTPGet: &manifests.HTTPGetAction{Path: "/healthz", Port: manifests.FromInt(8081)}}}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "Running and Ready", 30*time.Second, func(s manifests.PodStatus) bool {
		return s.Phase == manifests.PodRunning && ready(s) && app(s).State.Running != nil
	})
	p, setup := initStatus(st, "proxy"), initStatus(st, "setup")
	if p.State.Running == nil || p.Started == nil || !*p.Started || !p.Ready {
		t.Fatalf("sidecar: %s; want running, started and ready among the init containers", Describe(st))
	}
	if setup.State.Terminated == nil || setup.State.Terminated.Reason != "Completed" || !setup.Ready {
		t.Fatalf("init container after the sidecar: %s; want completed", Describe(st))
	}
	if setup.State.Terminated.StartedAt.Before(p.State.Running.StartedAt.Time) {
		t.Errorf("init container started at %v, before the sidecar before it (%v)", setup.State.Terminated.StartedAt, p.State.Running.StartedAt)
	}
	if !condition(st, manifests.PodInitialized) {
		t.Errorf("not Initialized with every init container done and the sidecar started: %s", Describe(st))
	}
	if a := app(st); a.RestartCount != 0 || a.State.Running.StartedAt.Before(setup.State.Terminated.FinishedAt.Time) {
		t.Errorf("app container: %s; want it started once, after the init containers (its postStart hook reached the sidecar)", Describe(st))
	}
}

func testSidecarsCompletion(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "sidecars-done", "sleep", "3")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	spec.Pod.Spec.InitContainers = []manifests.Container{
		sidecar(h, "first", "serve", "8081"),
		sidecar(h, "flaky", "crash", "1", "1"), // restarted although the pod's policy is Never
		sidecar(h, "last", "serve", "8082"),
	}
	ensure(t, rt, spec)
	waitFor(t, rt, spec.UID, "a sidecar restart", 30*time.Second, func(s manifests.PodStatus) bool {
		return initStatus(s, "flaky").RestartCount >= 1 && s.Phase == manifests.PodRunning
	})
	st := waitFor(t, rt, spec.UID, "Succeeded with the sidecars stopped", 30*time.Second, func(s manifests.PodStatus) bool {
		for _, c := range s.InitContainerStatuses {
			if c.State.Terminated == nil {
				return false
			}
		}
		return s.Phase == manifests.PodSucceeded
	})
	first, last := initStatus(st, "first").State.Terminated, initStatus(st, "last").State.Terminated
	done := app(st).State.Terminated
	if done == nil || done.ExitCode != 0 {
		t.Fatalf("app container: %s", Describe(st))
	}
	if last.FinishedAt.Before(done.FinishedAt.Time) || first.FinishedAt.Before(last.FinishedAt.Time) {
		t.Errorf("stop order: app %v, last sidecar %v, first sidecar %v; want the app, then the sidecars in reverse order",
			done.FinishedAt, last.FinishedAt, first.FinishedAt)
	}
	if ready(st) {
		t.Errorf("a completed pod is ready: %s", Describe(st))
	}
}

func testSidecarReadiness(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "sidecar-unready", "serve", "8080")
	spec.Pod.Spec.Containers[0].ReadinessProbe = tcpProbe(8080, 1)
	unready := sidecar(h, "proxy", "sleep", "inf")
	unready.ReadinessProbe = tcpProbe(9999, 1)
	spec.Pod.Spec.InitContainers = []manifests.Container{unready}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "the app container ready", 30*time.Second, func(s manifests.PodStatus) bool {
		return app(s).Ready && condition(s, manifests.PodInitialized)
	})
	p := initStatus(st, "proxy")
	if ready(st) || condition(st, manifests.ContainersReady) || p.Ready || p.Started == nil || !*p.Started {
		t.Errorf("%s; want the pod not ready while its started sidecar is not ready", Describe(st))
	}
}

func testTerminationMessages(t *testing.T, h *Harness) {
	rt := open(t, h)
	long := strings.Repeat("x", 904) + strings.Repeat("0123456789abcdef", 256) // 5000 bytes
	nobody := int64(65534)
	tests := []struct {
		name   string
		args   []string
		path   string
		policy manifests.TerminationMessagePolicy
		user   *int64
		want   string
	}{
		{"file", []string{"write", "/dev/termination-log", "all done"}, "", "", nil, "all done"},
		{"custom path", []string{"write", "/tmp/custom-msg", "custom"}, "/tmp/custom-msg", "", nil, "custom"},
		{"written by a non-root user", []string{"write", "/dev/termination-log", "as nobody"}, "", "", &nobody, "as nobody"},
		{"last 4096 bytes", []string{"write", "/dev/termination-log", long}, "", "", nil, long[len(long)-4096:]},
		{"logs on error", []string{"read", "/nonexistent"}, "", manifests.TerminationMessageFallbackToLogsOnError, nil,
			"testapp: open /nonexistent: no such file or directory\n"},
		{"no logs with policy File", []string{"read", "/nonexistent"}, "", manifests.TerminationMessageReadFile, nil, ""},
		{"no logs on success", []string{"print", "fine"}, "", manifests.TerminationMessageFallbackToLogsOnError, nil, ""},
	}
	specs := make([]*runtime.PodSpec, len(tests))
	for i, tt := range tests {
		spec := newPod(h, "message", tt.args...)
		spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
		c := &spec.Pod.Spec.Containers[0]
		c.TerminationMessagePath, c.TerminationMessagePolicy = tt.path, tt.policy
		if tt.user != nil {
			c.SecurityContext = &manifests.SecurityContext{RunAsUser: tt.user}
		}
		ensure(t, rt, spec)
		specs[i] = spec
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := waitFor(t, rt, specs[i].UID, "the container terminated", 30*time.Second, func(s manifests.PodStatus) bool {
				return app(s).State.Terminated != nil
			})
			if got := app(st).State.Terminated.Message; got != tt.want {
				t.Errorf("termination message %q, want %q (%s)", got, tt.want, Describe(st))
			}
		})
	}
}

func testTerminationMessageReopen(t *testing.T, h *Harness) {
	rt := h.Open(t)
	spec := newPod(h, "message-later", "crash", "3", "4")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	if err := rt.EnsurePod(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, rt, spec.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	code, err := rt.Exec(context.Background(), spec.UID, "app", runtime.ExecOptions{Command: []string{"/testapp", "write", "/dev/termination-log", "written before"}})
	if err != nil || code != 0 {
		t.Fatalf("write the termination message: code %d, err %v", code, err)
	}
	if err := rt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The container exits while no runtime watches it.
	time.Sleep(time.Until(app(st).State.Running.StartedAt.Add(3500 * time.Millisecond)))
	rt2 := open(t, h)
	ensure(t, rt2, spec)
	st = waitFor(t, rt2, spec.UID, "the container terminated", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Terminated != nil })
	if term := app(st).State.Terminated; term.ExitCode != 4 || term.Message != "written before" {
		t.Errorf("%s; want exit code 4 and the message written before the runtime was reopened", Describe(st))
	}
}

func testGRPCProbes(t *testing.T, h *Harness) {
	if h.GRPCImage == "" {
		t.Fatal("the harness has no GRPCImage")
	}
	rt := open(t, h)
	svc := func(s string) *string { return &s }
	grpcProbe := func(port int32, service *string) *manifests.Probe {
		return &manifests.Probe{ProbeHandler: manifests.ProbeHandler{GRPC: &manifests.GRPCAction{Port: port, Service: service}},
			PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
	}
	tests := []struct {
		name    string
		args    []string
		probe   *manifests.Probe
		succeed bool
	}{
		{"server serving", []string{"9090"}, grpcProbe(9090, nil), true},
		{"service serving", []string{"9090", "api=SERVING"}, grpcProbe(9090, svc("api")), true},
		{"service not serving", []string{"9090", "api=NOT_SERVING"}, grpcProbe(9090, svc("api")), false},
		{"unknown service", []string{"9090"}, grpcProbe(9090, svc("nope")), false},
		{"no health service", []string{"9090", "unimplemented"}, grpcProbe(9090, nil), false},
		{"nothing on the port", []string{"9090"}, grpcProbe(9091, nil), false},
	}
	specs := make([]*runtime.PodSpec, len(tests))
	for i, tt := range tests {
		spec := newPod(h, "grpc", tt.args...)
		c := &spec.Pod.Spec.Containers[0]
		c.Image = h.GRPCImage
		// Success makes the pod ready; failure fails the startup probe, which restarts it.
		if tt.succeed {
			c.ReadinessProbe = tt.probe
		} else {
			c.StartupProbe = tt.probe
		}
		ensure(t, rt, spec)
		specs[i] = spec
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.succeed {
				waitFor(t, rt, specs[i].UID, "ready", 30*time.Second, ready)
				return
			}
			st := waitFor(t, rt, specs[i].UID, "a restart after the failed probe", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).RestartCount >= 1 })
			if ready(st) {
				t.Errorf("ready with a failing gRPC probe: %s", Describe(st))
			}
		})
	}
}
