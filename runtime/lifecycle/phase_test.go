package lifecycle

import (
	"testing"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

func running() manifests.ContainerState {
	return manifests.ContainerState{Running: &manifests.ContainerStateRunning{}}
}

func exited(code int32) manifests.ContainerState {
	return manifests.ContainerState{Terminated: &manifests.ContainerStateTerminated{ExitCode: code}}
}

// worker builds a pod worker whose containers are in the given states, without running it.
func worker(policy manifests.RestartPolicy, inits, apps []*ctrState) *podWorker {
	w := &podWorker{spec: &runtime.PodSpec{Pod: &manifests.Pod{Spec: manifests.PodSpec{RestartPolicy: policy}}}, inits: inits, apps: apps}
	for i, cs := range inits {
		cs.init, cs.index, cs.spec = true, i, &manifests.Container{Name: "init"}
	}
	for i, cs := range apps {
		cs.index, cs.spec = i, &manifests.Container{Name: "app"}
	}
	return w
}

func side(state manifests.ContainerState, started bool) *ctrState {
	return &ctrState{sidecar: true, state: state, started: started}
}

func plain(state manifests.ContainerState) *ctrState { return &ctrState{state: state} }

func restarting(last manifests.ContainerState) *ctrState {
	return &ctrState{state: waiting("CrashLoopBackOff", ""), last: last}
}

func TestPhaseFollowsTheKubelet(t *testing.T) {
	tests := []struct {
		name   string
		policy manifests.RestartPolicy
		inits  []*ctrState
		apps   []*ctrState
		want   manifests.PodPhase
	}{
		{"init running", manifests.RestartPolicyAlways, []*ctrState{plain(running())}, []*ctrState{plain(waiting("PodInitializing", ""))}, manifests.PodPending},
		{"init failed, Never", manifests.RestartPolicyNever, []*ctrState{plain(exited(1))}, []*ctrState{plain(waiting("PodInitializing", ""))}, manifests.PodFailed},
		{"init failed, restarting", manifests.RestartPolicyOnFailure, []*ctrState{restarting(exited(1))}, []*ctrState{plain(waiting("PodInitializing", ""))}, manifests.PodPending},
		{"sidecar not started yet", manifests.RestartPolicyAlways, []*ctrState{side(running(), false)}, []*ctrState{plain(waiting("PodInitializing", ""))}, manifests.PodPending},
		{"sidecar and app running", manifests.RestartPolicyAlways, []*ctrState{side(running(), true)}, []*ctrState{plain(running())}, manifests.PodRunning},
		{"sidecar restarting after the app started", manifests.RestartPolicyAlways, []*ctrState{{sidecar: true, state: waiting("CrashLoopBackOff", ""), last: exited(1)}}, []*ctrState{plain(running())}, manifests.PodRunning},
		{"app done, sidecar still running", manifests.RestartPolicyNever, []*ctrState{side(running(), true)}, []*ctrState{plain(exited(0))}, manifests.PodRunning},
		{"app done, sidecar stopped with an error", manifests.RestartPolicyNever, []*ctrState{side(exited(137), false)}, []*ctrState{plain(exited(0))}, manifests.PodSucceeded},
		{"app failed, sidecar stopped", manifests.RestartPolicyNever, []*ctrState{side(exited(0), false)}, []*ctrState{plain(exited(2))}, manifests.PodFailed},
		{"app succeeded, OnFailure", manifests.RestartPolicyOnFailure, nil, []*ctrState{plain(exited(0))}, manifests.PodSucceeded},
		{"app failed, OnFailure restarts it", manifests.RestartPolicyOnFailure, nil, []*ctrState{plain(exited(1))}, manifests.PodRunning},
		{"app exited, Always", manifests.RestartPolicyAlways, nil, []*ctrState{restarting(exited(0))}, manifests.PodRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := worker(tt.policy, tt.inits, tt.apps).phase(); got != tt.want {
				t.Errorf("phase %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSidecarReadinessAndStartedInStatus(t *testing.T) {
	sc := side(running(), true)
	sc.ready = false
	app := plain(running())
	app.ready, app.started = true, true
	done := plain(exited(0))
	w := worker(manifests.RestartPolicyAlways, []*ctrState{done, sc}, []*ctrState{app})
	w.initialized = true
	st := w.state().Status
	if c := st.InitContainerStatuses[0]; !c.Ready || *c.Started {
		t.Errorf("completed init container: ready %v started %v, want ready and not started", c.Ready, *c.Started)
	}
	if c := st.InitContainerStatuses[1]; c.Ready || !*c.Started {
		t.Errorf("sidecar: ready %v started %v, want started and not ready", c.Ready, *c.Started)
	}
	for _, c := range st.Conditions {
		switch c.Type {
		case manifests.PodReady, manifests.ContainersReady:
			if c.Status != manifests.ConditionFalse {
				t.Errorf("%s is %s with a sidecar not ready", c.Type, c.Status)
			}
		case manifests.PodInitialized:
			if c.Status != manifests.ConditionTrue {
				t.Errorf("Initialized is %s with the init container done and the sidecar started", c.Status)
			}
		}
	}
}

func TestResolvePort(t *testing.T) {
	ports := []manifests.ContainerPort{{Name: "http", ContainerPort: 8080}}
	tests := []struct {
		port    manifests.IntOrString
		want    int
		wantErr bool
	}{
		{manifests.FromInt(80), 80, false},
		{manifests.FromString("http"), 8080, false},
		{manifests.FromString("9090"), 9090, false},
		{manifests.FromString("grpc"), 0, true},
		{manifests.FromInt(0), 0, true},
		{manifests.FromInt(70000), 0, true},
	}
	for _, tt := range tests {
		got, err := resolvePort("app", ports, tt.port)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("resolvePort(%v) = %d, %v; want %d, error %v", tt.port, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTerminationMessagesShareTheirPodsLimit(t *testing.T) {
	long := func(n int) manifests.ContainerState {
		st := exited(1)
		st.Terminated.Message = string(make([]byte, n))
		return st
	}
	a, b, c, d := plain(long(4096)), plain(long(4096)), plain(long(100)), plain(long(10))
	c.last = long(4096)
	w := worker(manifests.RestartPolicyNever, []*ctrState{a}, []*ctrState{b, c, d})
	st := w.state().Status
	for _, cs := range append(st.InitContainerStatuses, st.ContainerStatuses...) {
		for _, s := range []manifests.ContainerState{cs.State, cs.LastState} {
			if s.Terminated != nil && len(s.Terminated.Message) > 12<<10/4 {
				t.Errorf("a message of %d bytes in a pod of 4 containers, want at most %d", len(s.Terminated.Message), 12<<10/4)
			}
		}
	}
	if got := len(st.ContainerStatuses[1].State.Terminated.Message); got != 100 {
		t.Errorf("a short message was cut to %d bytes", got)
	}
	if len(a.state.Terminated.Message) != 4096 {
		t.Errorf("cutting the status changed the container's own state")
	}
}
