// Package runtimetest is the conformance suite of runtime.Runtime: every implementation — the
// in-memory fake and the libcontainer runtime — must pass it. Containers run Shoal's test program
// (tests/testapp), whose first argument selects a behaviour, or the gRPC health server
// (runtime/imagetest/grpchealth).
package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// Harness connects the suite to one implementation.
type Harness struct {
	// Open returns a Runtime over this harness's node state. The suite calls it again after
	// closing the previous Runtime, to check that pods are re-adopted. The Runtime's crash-loop
	// backoff should be short (100–500 ms) so that restarts are observed quickly.
	Open func(t *testing.T) runtime.Runtime
	// Image is a pullable image of the test program: Entrypoint ["/testapp"], Cmd ["serve"].
	Image string
	// MissingImage cannot be pulled.
	MissingImage string
	// GRPCImage is a pullable image of the gRPC health server: Entrypoint ["/grpchealth"],
	// arguments PORT [SERVICE=STATUS...] or PORT unimplemented.
	GRPCImage string
}

// Run runs the suite. newHarness is called once per test, for a fresh node state.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *Harness)
	}{
		{"RunsPodUntilReady", testRunsPodUntilReady},
		{"InitContainersRunInOrder", testInitContainersInOrder},
		{"ExitCodesAndReasons", testExitCodes},
		{"RestartAlwaysBacksOff", testRestartAlways},
		{"RestartOnFailure", testRestartOnFailure},
		{"LivenessProbeRestarts", testLivenessRestarts},
		{"StartupProbeGatesReadiness", testStartupProbe},
		{"Logs", testLogs},
		{"Exec", testExec},
		{"EnvAndExpansion", testEnv},
		{"ConfigMapAndSecretVolumes", testVolumes},
		{"MissingImage", testMissingImage},
		{"CommandNotFound", testCommandNotFound},
		{"OOMKilled", testOOM},
		{"PolicyRefusesPrivileged", testPrivilegedRefused},
		{"RemovePod", testRemovePod},
		{"ReadoptsAfterReopen", testReadopt},
		{"PostStartRunsBeforeRunning", testPostStart},
		{"PostStartFailureKillsContainer", testPostStartFails},
		{"PreStopRunsBeforeLivenessRestart", testPreStopOnRestart},
		{"PreStopOnRemoveWithinGrace", testPreStopOnRemove},
		{"PreStopForPodsOfAnEarlierRuntime", testPreStopOrphan},
		{"SidecarsStartInOrder", testSidecarsInOrder},
		{"SidecarsRestartAndStopAfterCompletion", testSidecarsCompletion},
		{"SidecarReadinessCountsForPod", testSidecarReadiness},
		{"TerminationMessages", testTerminationMessages},
		{"TerminationMessageSurvivesReopen", testTerminationMessageReopen},
		{"GRPCProbes", testGRPCProbes},
		{"PodMetrics", testPodMetrics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newHarness(t))
		})
	}
}

var uidSeq int

// newPod returns a defaulted single-container pod running the test program with args.
func newPod(h *Harness, name string, args ...string) *runtime.PodSpec {
	uidSeq++
	pod := &manifests.Pod{
		TypeMeta:   manifests.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default"},
		Spec: manifests.PodSpec{
			Containers: []manifests.Container{{Name: "app", Image: h.Image, ImagePullPolicy: manifests.PullIfNotPresent, Args: args}},
		},
	}
	grace := int64(2)
	pod.Spec.TerminationGracePeriodSeconds = &grace
	manifests.SetDefaults(pod)
	return &runtime.PodSpec{UID: fmt.Sprintf("uid-%s-%d-%d", name, time.Now().UnixNano()%1e6, uidSeq), Pod: pod}
}

func open(t *testing.T, h *Harness) runtime.Runtime {
	t.Helper()
	rt := h.Open(t)
	t.Cleanup(func() { rt.Close() })
	return rt
}

func ensure(t *testing.T, rt runtime.Runtime, spec *runtime.PodSpec) {
	t.Helper()
	if err := rt.EnsurePod(context.Background(), spec); err != nil {
		t.Fatalf("EnsurePod %s: %v", spec.Pod.Name, err)
	}
	t.Cleanup(func() {
		g := time.Duration(0)
		if err := rt.RemovePod(context.Background(), spec.UID, &g); err != nil {
			t.Errorf("cleanup: RemovePod %s: %v", spec.Pod.Name, err)
		}
	})
}

// waitFor polls the pod's status until cond holds or the deadline passes.
func waitFor(t *testing.T, rt runtime.Runtime, uid, what string, timeout time.Duration, cond func(s manifests.PodStatus) bool) manifests.PodStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last manifests.PodStatus
	for time.Now().Before(deadline) {
		st, err := rt.PodStatus(context.Background(), uid)
		if err == nil {
			last = st.Status
			if cond(last) {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last status: %s", timeout, what, Describe(last))
	return last
}

// Describe is a pod status in one line, each container with its readiness, restarts and state,
// for test failures.
func Describe(s manifests.PodStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%q message=%q", s.Phase, s.Reason, s.Message)
	for _, list := range [][]manifests.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
		for _, c := range list {
			fmt.Fprintf(&b, " [%s ready=%v restarts=%d %s]", c.Name, c.Ready, c.RestartCount, stateString(c.State))
		}
	}
	return b.String()
}

func stateString(s manifests.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%d %s %s)", s.Terminated.ExitCode, s.Terminated.Reason, s.Terminated.Message)
	case s.Waiting != nil:
		return fmt.Sprintf("waiting(%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	}
	return "none"
}

func ready(s manifests.PodStatus) bool {
	for _, c := range s.Conditions {
		if c.Type == manifests.PodReady {
			return c.Status == manifests.ConditionTrue
		}
	}
	return false
}

func app(s manifests.PodStatus) manifests.ContainerStatus {
	if len(s.ContainerStatuses) == 0 {
		return manifests.ContainerStatus{}
	}
	return s.ContainerStatuses[0]
}

func tcpProbe(port int32, period int32) *manifests.Probe {
	return &manifests.Probe{
		ProbeHandler:  manifests.ProbeHandler{TCPSocket: &manifests.TCPSocketAction{Port: manifests.FromInt(port)}},
		PeriodSeconds: period, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
	}
}

func testRunsPodUntilReady(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "web", "serve", "8080")
	c := &spec.Pod.Spec.Containers[0]
	c.Ports = []manifests.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: manifests.ProtocolTCP}}
	c.ReadinessProbe = &manifests.Probe{
		ProbeHandler:  manifests.ProbeHandler{HTTPGet: &manifests.HTTPGetAction{Path: "/healthz", Port: manifests.FromString("http"), Scheme: manifests.URISchemeHTTP}},
		PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
	}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "Running and Ready", 30*time.Second, func(s manifests.PodStatus) bool {
		return s.Phase == manifests.PodRunning && ready(s)
	})
	a := app(st)
	if a.ContainerID == "" || a.State.Running == nil || !a.Ready || a.RestartCount != 0 || a.ImageID == "" {
		t.Errorf("container status %+v: want running, ready, an ID and an image ID, no restarts", a)
	}
	if err := rt.EnsurePod(context.Background(), spec); err != nil {
		t.Fatalf("EnsurePod again: %v", err)
	}
	again := waitFor(t, rt, spec.UID, "status", time.Second, func(manifests.PodStatus) bool { return true })
	if app(again).ContainerID != a.ContainerID {
		t.Errorf("a second EnsurePod replaced the container: %s → %s", a.ContainerID, app(again).ContainerID)
	}
	pods, err := rt.Pods(context.Background())
	if err != nil || len(pods) != 1 || pods[0].UID != spec.UID || pods[0].Name != "web" {
		t.Errorf("Pods() = %+v, %v; want the one pod", pods, err)
	}
}

func testInitContainersInOrder(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "init", "sleep", "inf")
	for _, n := range []string{"first", "second"} {
		spec.Pod.Spec.InitContainers = append(spec.Pod.Spec.InitContainers, manifests.Container{
			Name: n, Image: h.Image, ImagePullPolicy: manifests.PullIfNotPresent, Args: []string{"print", n}})
	}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "init containers done and the app running", 30*time.Second, func(s manifests.PodStatus) bool {
		return s.Phase == manifests.PodRunning && app(s).State.Running != nil
	})
	if len(st.InitContainerStatuses) != 2 {
		t.Fatalf("init statuses: %s", Describe(st))
	}
	first, second := st.InitContainerStatuses[0].State.Terminated, st.InitContainerStatuses[1].State.Terminated
	if first == nil || second == nil || first.Reason != "Completed" || second.Reason != "Completed" {
		t.Fatalf("init containers not completed: %s", Describe(st))
	}
	if second.StartedAt.Before(first.FinishedAt.Time) {
		t.Errorf("second init container started at %v, before the first finished at %v", second.StartedAt, first.FinishedAt)
	}
	if app(st).State.Running.StartedAt.Before(second.FinishedAt.Time) {
		t.Errorf("app container started before the init containers finished")
	}
}

func testExitCodes(t *testing.T, h *Harness) {
	rt := open(t, h)
	for _, tt := range []struct {
		code   string
		reason string
		phase  manifests.PodPhase
	}{
		{"3", "Error", manifests.PodFailed},
		{"0", "Completed", manifests.PodSucceeded},
	} {
		spec := newPod(h, "exit"+tt.code, "exit", tt.code)
		spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
		ensure(t, rt, spec)
		st := waitFor(t, rt, spec.UID, "phase "+string(tt.phase), 30*time.Second, func(s manifests.PodStatus) bool { return s.Phase == tt.phase })
		term := app(st).State.Terminated
		if term == nil || fmt.Sprint(term.ExitCode) != tt.code || term.Reason != tt.reason {
			t.Errorf("exit %s: %s; want exit code %s, reason %s", tt.code, Describe(st), tt.code, tt.reason)
		}
	}
}

func testRestartAlways(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "crashy", "exit", "1")
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "two restarts", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).RestartCount >= 2 })
	if st.Phase != manifests.PodRunning {
		t.Errorf("phase %s, want Running for a restarting pod with restartPolicy Always", st.Phase)
	}
	st = waitFor(t, rt, spec.UID, "CrashLoopBackOff", 30*time.Second, func(s manifests.PodStatus) bool {
		w := app(s).State.Waiting
		return w != nil && w.Reason == "CrashLoopBackOff"
	})
	if lt := app(st).LastState.Terminated; lt == nil || lt.ExitCode != 1 {
		t.Errorf("lastState %+v, want the terminated run with exit code 1", app(st).LastState)
	}
}

func testRestartOnFailure(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "onfailure", "exit", "0")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyOnFailure
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "Succeeded", 30*time.Second, func(s manifests.PodStatus) bool { return s.Phase == manifests.PodSucceeded })
	if app(st).RestartCount != 0 {
		t.Errorf("restarted a container that exited 0 under OnFailure: %s", Describe(st))
	}
	fail := newPod(h, "onfailure-fail", "exit", "4")
	fail.Pod.Spec.RestartPolicy = manifests.RestartPolicyOnFailure
	ensure(t, rt, fail)
	waitFor(t, rt, fail.UID, "a restart", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).RestartCount >= 1 })
}

func testLivenessRestarts(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "liveness", "serve", "8080")
	spec.Pod.Spec.Containers[0].LivenessProbe = &manifests.Probe{
		ProbeHandler:  manifests.ProbeHandler{Exec: &manifests.ExecAction{Command: []string{"/testapp", "exit", "1"}}},
		PeriodSeconds: 1, TimeoutSeconds: 2, SuccessThreshold: 1, FailureThreshold: 1,
	}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "a restart by the liveness probe", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).RestartCount >= 1 })
	if st.Phase != manifests.PodRunning && st.Phase != manifests.PodPending {
		t.Errorf("phase %s after a liveness restart", st.Phase)
	}
}

func testStartupProbe(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "startup", "serve", "8080")
	c := &spec.Pod.Spec.Containers[0]
	c.StartupProbe = tcpProbe(8080, 1)
	c.ReadinessProbe = tcpProbe(8080, 1)
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "started and ready", 30*time.Second, func(s manifests.PodStatus) bool { return ready(s) })
	if a := app(st); a.Started == nil || !*a.Started {
		t.Errorf("ready before started: %+v", a)
	}

	never := newPod(h, "never-starts", "sleep", "inf")
	c = &never.Pod.Spec.Containers[0]
	c.StartupProbe = tcpProbe(9999, 1)
	c.StartupProbe.FailureThreshold = 1
	ensure(t, rt, never)
	st = waitFor(t, rt, never.UID, "a restart after the startup probe failed", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).RestartCount >= 1 })
	if ready(st) {
		t.Errorf("a container whose startup probe never succeeds is ready")
	}
}

func testLogs(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "logs", "print", "hello", "logs")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	ensure(t, rt, spec)
	waitFor(t, rt, spec.UID, "Succeeded", 30*time.Second, func(s manifests.PodStatus) bool { return s.Phase == manifests.PodSucceeded })
	var buf bytes.Buffer
	if err := rt.Logs(context.Background(), spec.UID, "app", runtime.LogOptions{}, &buf); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if !hasLine(buf.String(), "hello logs") || !hasLine(buf.String(), "err: hello logs") {
		t.Errorf("logs %q: want stdout and stderr lines", buf.String())
	}

	tick := newPod(h, "ticker", "ticker", "50")
	ensure(t, rt, tick)
	waitFor(t, rt, tick.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return s.Phase == manifests.PodRunning })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var follow bytes.Buffer
	if err := rt.Logs(ctx, tick.UID, "app", runtime.LogOptions{Follow: true}, &follow); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Logs follow: %v", err)
	}
	if n := strings.Count(follow.String(), "tick "); n < 5 {
		t.Errorf("followed %d ticks in 1.5 s, want at least 5:\n%s", n, follow.String())
	}
}

func testExec(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "exec", "sleep", "inf")
	ensure(t, rt, spec)
	waitFor(t, rt, spec.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	var out, errb bytes.Buffer
	code, err := rt.Exec(context.Background(), spec.UID, "app", runtime.ExecOptions{Command: []string{"/testapp", "print", "hi"}, Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 || out.String() != "hi\n" || errb.String() != "err: hi\n" {
		t.Errorf("exec print: code %d, err %v, stdout %q, stderr %q", code, err, out.String(), errb.String())
	}
	code, err = rt.Exec(context.Background(), spec.UID, "app", runtime.ExecOptions{Command: []string{"/testapp", "exit", "5"}})
	if err != nil || code != 5 {
		t.Errorf("exec exit 5: code %d, err %v", code, err)
	}
	if _, err := rt.Exec(context.Background(), spec.UID, "nope", runtime.ExecOptions{Command: []string{"/testapp"}}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("exec in an unknown container: %v, want ErrNotFound", err)
	}
}

func testEnv(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "env", "print", "$(GREETING)", "from", "$(POD_NAME)", "$$(ESCAPED)", "$(UNDEFINED)")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	c := &spec.Pod.Spec.Containers[0]
	c.Env = []manifests.EnvVar{
		{Name: "GREETING", ValueFrom: &manifests.EnvVarSource{ConfigMapKeyRef: &manifests.ConfigMapKeySelector{LocalObjectReference: manifests.LocalObjectReference{Name: "cfg"}, Key: "greeting"}}},
		{Name: "POD_NAME", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	spec.ConfigMaps = map[string]*manifests.ConfigMap{"cfg": {ObjectMeta: manifests.ObjectMeta{Name: "cfg", Namespace: "default"}, Data: map[string]string{"greeting": "hello"}}}
	ensure(t, rt, spec)
	waitFor(t, rt, spec.UID, "Succeeded", 30*time.Second, func(s manifests.PodStatus) bool { return s.Phase == manifests.PodSucceeded })
	var buf bytes.Buffer
	if err := rt.Logs(context.Background(), spec.UID, "app", runtime.LogOptions{}, &buf); err != nil {
		t.Fatal(err)
	}
	if want := "hello from env $(ESCAPED) $(UNDEFINED)"; !hasLine(buf.String(), want) {
		t.Errorf("log %q, want the line %q", buf.String(), want)
	}

	missing := newPod(h, "env-missing", "sleep", "inf")
	missing.Pod.Spec.Containers[0].Env = c.Env[:1]
	ensure(t, rt, missing)
	waitFor(t, rt, missing.UID, "CreateContainerConfigError", 30*time.Second, func(s manifests.PodStatus) bool {
		w := app(s).State.Waiting
		return w != nil && w.Reason == "CreateContainerConfigError" && strings.Contains(w.Message, `configmap "cfg" not found`)
	})
}

func testVolumes(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "volumes", "read", "/etc/config/greeting")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	spec.Pod.Spec.Volumes = []manifests.Volume{
		{Name: "config", VolumeSource: manifests.VolumeSource{ConfigMap: &manifests.ConfigMapVolumeSource{LocalObjectReference: manifests.LocalObjectReference{Name: "cfg"}}}},
		{Name: "creds", VolumeSource: manifests.VolumeSource{Secret: &manifests.SecretVolumeSource{SecretName: "creds"}}},
		{Name: "scratch", VolumeSource: manifests.VolumeSource{EmptyDir: &manifests.EmptyDirVolumeSource{}}},
	}
	spec.Pod.Spec.Containers[0].VolumeMounts = []manifests.VolumeMount{
		{Name: "config", MountPath: "/etc/config"},
		{Name: "creds", MountPath: "/etc/creds"},
		{Name: "scratch", MountPath: "/scratch"},
	}
	spec.ConfigMaps = map[string]*manifests.ConfigMap{"cfg": {Data: map[string]string{"greeting": "hello volume"}}}
	spec.Secrets = map[string]*manifests.Secret{"creds": {Data: map[string][]byte{"password": []byte("s3cret")}}}
	manifests.SetDefaults(spec.Pod)
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "Succeeded", 30*time.Second, func(s manifests.PodStatus) bool {
		return s.Phase == manifests.PodSucceeded || s.Phase == manifests.PodFailed
	})
	var buf bytes.Buffer
	if err := rt.Logs(context.Background(), spec.UID, "app", runtime.LogOptions{}, &buf); err != nil {
		t.Errorf("Logs: %v", err)
	}
	if st.Phase != manifests.PodSucceeded || !strings.Contains(buf.String(), "hello volume") {
		t.Fatalf("reading the configMap file: %s; log %q", Describe(st), buf.String())
	}

	sec := newPod(h, "secret-volume", "sleep", "inf")
	sec.Pod.Spec.Volumes = spec.Pod.Spec.Volumes
	sec.Pod.Spec.Containers[0].VolumeMounts = spec.Pod.Spec.Containers[0].VolumeMounts
	sec.ConfigMaps, sec.Secrets = spec.ConfigMaps, spec.Secrets
	ensure(t, rt, sec)
	waitFor(t, rt, sec.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	var out bytes.Buffer
	code, err := rt.Exec(context.Background(), sec.UID, "app", runtime.ExecOptions{Command: []string{"/testapp", "read", "/etc/creds/password"}, Stdout: &out})
	if err != nil || code != 0 || out.String() != "s3cret" {
		t.Errorf("reading the secret file: code %d, err %v, out %q", code, err, out.String())
	}
	var werr bytes.Buffer
	code, err = rt.Exec(context.Background(), sec.UID, "app", runtime.ExecOptions{Command: []string{"/testapp", "write", "/etc/config/greeting", "x"}, Stderr: &werr})
	if err != nil || code == 0 || !strings.Contains(werr.String(), "read-only file system") {
		t.Errorf("writing to a configMap volume: code %d, err %v, stderr %q; want it refused as a read-only file system", code, err, werr.String())
	}
}

func testMissingImage(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "noimage", "serve")
	spec.Pod.Spec.Containers[0].Image = h.MissingImage
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "ImagePullBackOff", 30*time.Second, func(s manifests.PodStatus) bool {
		w := app(s).State.Waiting
		return w != nil && w.Reason == "ImagePullBackOff"
	})
	if st.Phase != manifests.PodPending || app(st).State.Waiting.Message == "" {
		t.Errorf("missing image: %s; want Pending with the pull error as message", Describe(st))
	}
}

func testCommandNotFound(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "nocmd")
	spec.Pod.Spec.Containers[0].Command = []string{"/no/such/program"}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "CreateContainerError", 30*time.Second, func(s manifests.PodStatus) bool {
		w := app(s).State.Waiting
		return w != nil && w.Reason == "CreateContainerError"
	})
	if !strings.Contains(app(st).State.Waiting.Message, "/no/such/program") {
		t.Errorf("message %q does not name the missing command", app(st).State.Waiting.Message)
	}
}

func testOOM(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "oom", "alloc", "256")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	mem, err := manifests.ParseQuantity("64Mi")
	if err != nil {
		t.Fatal(err)
	}
	spec.Pod.Spec.Containers[0].Resources.Limits = manifests.ResourceList{manifests.ResourceMemory: mem}
	ensure(t, rt, spec)
	st := waitFor(t, rt, spec.UID, "OOMKilled", 60*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Terminated != nil })
	if term := app(st).State.Terminated; term.Reason != "OOMKilled" || st.Phase != manifests.PodFailed {
		t.Errorf("%s; want the container OOMKilled and the pod Failed", Describe(st))
	}
}

func testPrivilegedRefused(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "privileged", "serve")
	yes := true
	spec.Pod.Spec.Containers[0].SecurityContext = &manifests.SecurityContext{Privileged: &yes}
	ensure(t, rt, spec)
	waitFor(t, rt, spec.UID, "refusal", 30*time.Second, func(s manifests.PodStatus) bool {
		w := app(s).State.Waiting
		return w != nil && w.Reason == "CreateContainerConfigError" && strings.Contains(w.Message, "privileged")
	})
}

func testRemovePod(t *testing.T, h *Harness) {
	rt := open(t, h)
	spec := newPod(h, "removed", "serve")
	if err := rt.EnsurePod(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, rt, spec.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	start := time.Now()
	if err := rt.RemovePod(context.Background(), spec.UID, nil); err != nil {
		t.Fatalf("RemovePod: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("RemovePod took %v for a program that exits on SIGTERM", d)
	}
	if _, err := rt.PodStatus(context.Background(), spec.UID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("PodStatus after RemovePod: %v, want ErrNotFound", err)
	}
	if err := rt.RemovePod(context.Background(), spec.UID, nil); err != nil {
		t.Errorf("RemovePod of a removed pod: %v, want nil", err)
	}
	if pods, err := rt.Pods(context.Background()); err != nil || len(pods) != 0 {
		t.Errorf("Pods() after removal: %+v, %v; want no pods", pods, err)
	}
}

func testReadopt(t *testing.T, h *Harness) {
	rt := h.Open(t)
	spec := newPod(h, "adopted", "serve", "8080")
	restartOnce := newPod(h, "restarted", "crash", "0", "1")
	for _, s := range []*runtime.PodSpec{spec, restartOnce} {
		if err := rt.EnsurePod(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	before := waitFor(t, rt, spec.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	if before.StartTime == nil || before.StartTime.IsZero() {
		t.Fatalf("no startTime: %s", Describe(before))
	}
	// The count only grows: what the first runtime reported is a floor for the second.
	restartsBefore := app(waitFor(t, rt, restartOnce.UID, "a restart", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).RestartCount >= 1 })).RestartCount
	restartOnce.Pod.Spec.Containers[0].Args = []string{"serve"} // what runs now is kept, not this
	if err := rt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	rt2 := open(t, h)
	t.Cleanup(func() {
		g := time.Duration(0)
		for _, uid := range []string{spec.UID, restartOnce.UID} {
			if err := rt2.RemovePod(context.Background(), uid, &g); err != nil {
				t.Errorf("cleanup: RemovePod: %v", err)
			}
		}
	})
	pods, err := rt2.Pods(context.Background())
	if err != nil || len(pods) != 2 {
		t.Fatalf("a reopened runtime lists %d pods (%v), want the 2 left running", len(pods), err)
	}
	if err := rt2.EnsurePod(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	after := waitFor(t, rt2, spec.UID, "Running", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).State.Running != nil })
	if app(after).ContainerID != app(before).ContainerID || app(after).RestartCount != 0 {
		t.Errorf("after reopening: container %s restarts %d; want the same container %s, no restart",
			app(after).ContainerID, app(after).RestartCount, app(before).ContainerID)
	}
	if after.StartTime == nil || !after.StartTime.Equal(before.StartTime.Time) {
		t.Errorf("startTime after reopening %v, want the pod's first start time %v", after.StartTime, before.StartTime)
	}
	if err := rt2.EnsurePod(context.Background(), restartOnce); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, rt2, restartOnce.UID, "the container adopted", 30*time.Second, func(s manifests.PodStatus) bool { return app(s).ContainerID != "" })
	if app(st).RestartCount < restartsBefore {
		t.Errorf("restart count lost across reopen: %d before, now %s", restartsBefore, Describe(st))
	}
}

// hasLine reports whether text has a line equal to line. Lines of stdout and stderr may
// interleave in any order.
func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
