package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// podWorker drives one pod: sandbox, init containers, app containers.
type podWorker struct {
	m      *Manager
	spec   *runtime.PodSpec
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	sandbox    Sandbox
	startTime  time.Time
	message    string // pod-level problem (sandbox, volumes)
	reason     string
	inits      []*ctrState
	apps       []*ctrState
	initFailed bool // an init container failed and will not be retried
}

// ctrState is the observed state of one container of the pod, across its restarts.
type ctrState struct {
	spec     *manifests.Container
	init     bool
	id       string
	imageRef string
	imageID  string
	restarts int32
	state    manifests.ContainerState
	last     manifests.ContainerState
	ready    bool
	started  bool
	crashes  int // consecutive exits since the count was last reset
}

func newPodWorker(m *Manager, spec *runtime.PodSpec) *podWorker {
	ctx, cancel := context.WithCancel(m.ctx)
	w := &podWorker{m: m, spec: spec, ctx: ctx, cancel: cancel, done: make(chan struct{}), startTime: time.Now()}
	for i := range spec.Pod.Spec.InitContainers {
		c := &spec.Pod.Spec.InitContainers[i]
		w.inits = append(w.inits, &ctrState{spec: c, init: true, imageRef: c.Image, state: waiting("PodInitializing", "")})
	}
	for i := range spec.Pod.Spec.Containers {
		c := &spec.Pod.Spec.Containers[i]
		reason := "ContainerCreating"
		if len(w.inits) > 0 {
			reason = "PodInitializing"
		}
		w.apps = append(w.apps, &ctrState{spec: c, imageRef: c.Image, state: waiting(reason, "")})
	}
	return w
}

func waiting(reason, msg string) manifests.ContainerState {
	return manifests.ContainerState{Waiting: &manifests.ContainerStateWaiting{Reason: reason, Message: msg}}
}

// stop ends the worker and waits for it. Containers keep running.
func (w *podWorker) stop() {
	w.cancel()
	<-w.done
}

// update changes the pod's state under the lock and announces the change.
func (w *podWorker) update(f func()) {
	w.mu.Lock()
	f()
	w.mu.Unlock()
	w.m.notify(w.spec.UID)
}

// sleep waits d or until the worker stops; it reports whether the worker goes on.
func (w *podWorker) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (w *podWorker) run() {
	defer close(w.done)
	d := w.m.cfg.Driver
	log := w.m.log.With("pod", w.spec.Pod.Namespace+"/"+w.spec.Pod.Name, "uid", w.spec.UID)

	// The sandbox, retried with backoff until it exists.
	tries := 0
	for {
		sbCfg, err := sandboxConfig(w.spec, w.m.cfg.Policy)
		if err == nil {
			var sb Sandbox
			sb, err = d.CreateSandbox(w.ctx, sbCfg)
			if err == nil {
				w.update(func() { w.sandbox, w.message, w.reason = sb, "", "" })
				break
			}
		}
		if w.ctx.Err() != nil {
			return
		}
		log.Warn("pod sandbox", "err", err)
		reason := "FailedCreatePodSandBox"
		if isConfigError(err) {
			reason = "CreateContainerConfigError"
		}
		w.update(func() { w.reason, w.message = reason, err.Error() })
		tries++
		if !w.sleep(w.ctx, w.m.cfg.Backoff.Retry(tries)) {
			return
		}
	}

	existing, err := d.Containers(w.ctx, w.spec.UID)
	if err != nil && w.ctx.Err() != nil {
		return
	}
	adopted := map[string]ContainerInfo{}
	for _, c := range latestContainers(w.spec.UID, existing) {
		adopted[c.Meta.Name] = c
	}

	// Init containers, to completion and in order.
	for _, cs := range w.inits {
		if !w.runInit(cs, adopted[cs.spec.Name]) {
			return
		}
	}
	// The app containers, side by side.
	var wg sync.WaitGroup
	for _, cs := range w.apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runApp(cs, adopted[cs.spec.Name])
		}()
	}
	wg.Wait()
}

// runInit runs an init container until it succeeds; it reports whether the pod goes on.
func (w *podWorker) runInit(cs *ctrState, adopted ContainerInfo) bool {
	policy := w.spec.Pod.Spec.RestartPolicy
	for {
		info, ok := w.runOnce(cs, &adopted)
		if !ok {
			return false
		}
		if info.ExitCode == 0 && !info.OOMKilled {
			return true
		}
		if policy == manifests.RestartPolicyNever {
			w.update(func() { w.initFailed = true })
			return false
		}
		if !w.backoff(cs, info) {
			return false
		}
	}
}

// runApp runs an app container for the life of the pod, restarting it per restartPolicy.
func (w *podWorker) runApp(cs *ctrState, adopted ContainerInfo) {
	policy := w.spec.Pod.Spec.RestartPolicy
	for {
		info, ok := w.runOnce(cs, &adopted)
		if !ok {
			return
		}
		switch {
		case policy == manifests.RestartPolicyNever:
			return
		case policy == manifests.RestartPolicyOnFailure && info.ExitCode == 0 && !info.OOMKilled:
			return
		}
		if !w.backoff(cs, info) {
			return
		}
	}
}

// backoff waits before restarting a container that exited; it reports whether to go on.
func (w *podWorker) backoff(cs *ctrState, info ContainerInfo) bool {
	ran := info.FinishedAt.Sub(info.StartedAt)
	w.mu.Lock()
	if w.m.cfg.Backoff.Resets(ran) {
		cs.crashes = 0
	}
	cs.crashes++
	delay := w.m.cfg.Backoff.Delay(cs.crashes)
	w.mu.Unlock()
	w.update(func() {
		cs.last = cs.state
		if delay > 0 {
			cs.state = waiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				delay.Round(time.Millisecond), cs.spec.Name, w.spec.Pod.Name, w.spec.Pod.Namespace, w.spec.UID))
		}
	})
	if delay > 0 && !w.sleep(w.ctx, delay) {
		return false
	}
	w.update(func() { cs.restarts++ })
	return true
}

// runOnce brings one run of a container to its end: it adopts the container an earlier process
// started, or pulls the image and starts a new one, then probes it until it exits. It returns the
// final state and whether the worker goes on (false when the pod is being stopped).
func (w *podWorker) runOnce(cs *ctrState, adopted *ContainerInfo) (ContainerInfo, bool) {
	d := w.m.cfg.Driver
	var id string
	var info ContainerInfo
	if adopted.ID != "" {
		a := *adopted
		*adopted = ContainerInfo{}
		w.update(func() {
			cs.id, cs.restarts, cs.imageID = a.ID, a.Meta.Attempt, a.ImageID
		})
		if a.Status == ContainerExited {
			w.update(func() { cs.state = driverState(a) })
			return a, true
		}
		id, info = a.ID, a
	} else {
		var ok bool
		if id, info, ok = w.start(cs); !ok {
			return ContainerInfo{}, false
		}
	}
	w.update(func() {
		cs.id = id
		cs.state = manifests.ContainerState{Running: &manifests.ContainerStateRunning{StartedAt: manifests.NewTime(info.StartedAt)}}
		cs.ready = false
		cs.started = false
	})

	runCtx, stopProbes := context.WithCancel(w.ctx)
	kill := make(chan string, 1)
	probesDone := w.startProbes(runCtx, cs, id, info.StartedAt, kill)
	exited := make(chan ContainerInfo, 1)
	waitErr := make(chan error, 1)
	go func() {
		fin, err := d.WaitContainer(runCtx, id)
		if err != nil {
			waitErr <- err
			return
		}
		exited <- fin
	}()

	var final ContainerInfo
	for final.ID == "" {
		select {
		case fin := <-exited:
			final = fin
		case err := <-waitErr:
			stopProbes()
			probesDone.Wait()
			if w.ctx.Err() != nil {
				return ContainerInfo{}, false
			}
			// The driver lost the container: report it and start over.
			w.m.log.Warn("wait for container", "container", cs.spec.Name, "err", err)
			return ContainerInfo{ID: id, ExitCode: 128, FinishedAt: time.Now(), StartedAt: info.StartedAt}, true
		case why := <-kill:
			w.m.log.Info("restarting container", "pod", w.spec.Pod.Name, "container", cs.spec.Name, "why", why)
			grace := w.grace(cs.spec)
			if _, err := d.StopContainer(w.ctx, id, grace); err != nil && w.ctx.Err() == nil {
				w.m.log.Warn("stop container", "container", cs.spec.Name, "err", err)
			}
		}
	}
	stopProbes()
	probesDone.Wait()
	w.update(func() {
		cs.state = manifests.ContainerState{Terminated: terminated(final)}
		cs.ready = false
	})
	return final, true
}

func (w *podWorker) grace(c *manifests.Container) time.Duration {
	g := 30 * time.Second
	if tg := w.spec.Pod.Spec.TerminationGracePeriodSeconds; tg != nil {
		g = time.Duration(*tg) * time.Second
	}
	if p := c.LivenessProbe; p != nil && p.TerminationGracePeriodSeconds != nil {
		g = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	}
	return g
}

// start pulls the image and starts a new container, retrying with backoff; ok is false when the
// worker stops.
func (w *podWorker) start(cs *ctrState) (id string, info ContainerInfo, ok bool) {
	d := w.m.cfg.Driver
	tries, pulls := 0, 0
	retry := func(reason string, err error) bool {
		w.update(func() { cs.state = waiting(reason, err.Error()) })
		tries++
		return w.sleep(w.ctx, w.m.cfg.Backoff.Retry(tries))
	}
	for {
		if w.ctx.Err() != nil {
			return "", info, false
		}
		w.mu.Lock()
		sb := w.sandbox
		attempt := cs.restarts
		w.mu.Unlock()

		img, err := d.EnsureImage(w.ctx, cs.spec.Image, cs.spec.ImagePullPolicy, pullSecrets(w.spec))
		if err != nil {
			if w.ctx.Err() != nil {
				return "", info, false
			}
			pulls++
			reason := "ErrImagePull"
			if pulls > 1 {
				reason = "ImagePullBackOff"
			}
			if errors.Is(err, ErrImageNeverPull) {
				reason = "ErrImageNeverPull"
			}
			if !retry(reason, err) {
				return "", info, false
			}
			continue
		}
		w.update(func() { cs.imageID = img.ID })
		meta := ContainerMeta{PodUID: w.spec.UID, PodNamespace: w.spec.Pod.Namespace, PodName: w.spec.Pod.Name,
			Name: cs.spec.Name, Init: cs.init, Attempt: attempt}
		cfg, err := containerConfig(w.spec, sb, cs.spec, img, meta, w.m.cfg.Policy)
		if err != nil {
			if !retry("CreateContainerConfigError", err) {
				return "", info, false
			}
			continue
		}
		// A container of this attempt left by a failed start is replaced.
		w.removeAttempt(cs.spec.Name, attempt)
		id, err = d.StartContainer(w.ctx, cfg)
		if err != nil {
			if w.ctx.Err() != nil {
				return "", info, false
			}
			if !retry("CreateContainerError", err) {
				return "", info, false
			}
			continue
		}
		w.removeOlder(cs.spec.Name, attempt)
		info = ContainerInfo{ID: id, StartedAt: time.Now()}
		if all, err := d.Containers(w.ctx, w.spec.UID); err == nil {
			for _, c := range all {
				if c.ID == id {
					info = c
				}
			}
		}
		return id, info, true
	}
}

// removeAttempt removes containers of this pod, name and attempt (a failed earlier start).
func (w *podWorker) removeAttempt(name string, attempt int32) {
	w.removeWhere(func(m ContainerMeta) bool { return m.Name == name && m.Attempt == attempt })
}

// removeOlder keeps the previous run (for logs --previous) and removes runs before it.
func (w *podWorker) removeOlder(name string, attempt int32) {
	w.removeWhere(func(m ContainerMeta) bool { return m.Name == name && m.Attempt < attempt-1 })
}

func (w *podWorker) removeWhere(match func(ContainerMeta) bool) {
	d := w.m.cfg.Driver
	all, err := d.Containers(w.ctx, w.spec.UID)
	if err != nil {
		return
	}
	for _, c := range all {
		if c.Meta.PodUID == w.spec.UID && match(c.Meta) {
			if err := d.RemoveContainer(w.ctx, c.ID); err != nil {
				w.m.log.Warn("remove old container", "container", c.Meta.Name, "attempt", c.Meta.Attempt, "err", err)
			}
		}
	}
}

// startProbes starts the container's probes. A failed liveness or startup probe sends a reason on
// kill. The returned WaitGroup is done when every probe has stopped.
func (w *podWorker) startProbes(ctx context.Context, cs *ctrState, id string, started time.Time, kill chan<- string) *sync.WaitGroup {
	var wg sync.WaitGroup
	c := cs.spec
	startedCh := make(chan struct{})
	markStarted := func() {
		w.update(func() {
			cs.started = true
			if c.ReadinessProbe == nil {
				cs.ready = true
			}
		})
		close(startedCh)
	}
	afterStart := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-startedCh:
			}
			f()
		}()
	}
	if c.StartupProbe != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			runProbe(sctx, timing(c.StartupProbe), started, false, w.checker(cs, id, c.StartupProbe), func(ok bool) {
				if ok {
					markStarted()
					cancel() // a startup probe stops once it succeeded
					return
				}
				select {
				case kill <- "startup probe failed":
				default:
				}
				cancel()
			})
		}()
	} else {
		markStarted()
	}
	if p := c.ReadinessProbe; p != nil {
		afterStart(func() {
			runProbe(ctx, timing(p), started, false, w.checker(cs, id, p), func(ok bool) {
				w.update(func() { cs.ready = ok })
			})
		})
	}
	if p := c.LivenessProbe; p != nil {
		afterStart(func() {
			runProbe(ctx, timing(p), started, true, w.checker(cs, id, p), func(ok bool) {
				if !ok {
					select {
					case kill <- "liveness probe failed":
					default:
					}
				}
			})
		})
	}
	return &wg
}

func timing(p *manifests.Probe) ProbeTiming {
	return ProbeTiming{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:          time.Duration(p.TimeoutSeconds) * time.Second,
		SuccessThreshold: int(p.SuccessThreshold),
		FailureThreshold: int(p.FailureThreshold),
	}
}

// checker turns a probe's handler into a check function.
func (w *podWorker) checker(cs *ctrState, id string, p *manifests.Probe) func(ctx context.Context) error {
	d := w.m.cfg.Driver
	w.mu.Lock()
	sb := w.sandbox
	w.mu.Unlock()
	switch {
	case p.Exec != nil:
		cmd := p.Exec.Command
		return func(ctx context.Context) error {
			code, err := d.Exec(ctx, id, runtime.ExecOptions{Command: cmd})
			if err != nil {
				return err
			}
			if code != 0 {
				return fmt.Errorf("exec probe %v exited with %d", cmd, code)
			}
			return nil
		}
	case p.HTTPGet != nil:
		port, err := resolvePort(cs.spec, p.HTTPGet.Port)
		hp := HTTPProbe{Scheme: string(p.HTTPGet.Scheme), Host: p.HTTPGet.Host, Port: port, Path: p.HTTPGet.Path, Headers: map[string]string{}}
		for _, h := range p.HTTPGet.HTTPHeaders {
			hp.Headers[h.Name] = h.Value
		}
		return func(ctx context.Context) error {
			if err != nil {
				return err
			}
			return d.ProbeHTTP(ctx, sb, hp)
		}
	case p.TCPSocket != nil:
		port, err := resolvePort(cs.spec, p.TCPSocket.Port)
		host := p.TCPSocket.Host
		return func(ctx context.Context) error {
			if err != nil {
				return err
			}
			return d.ProbeTCP(ctx, sb, host, port)
		}
	}
	return func(context.Context) error { return errors.New("probe has no handler") }
}

// resolvePort turns a probe's port (a number or a container port name) into a number.
func resolvePort(c *manifests.Container, p manifests.IntOrString) (int, error) {
	if p.Type == manifests.Int {
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %q has no port named %q", c.Name, p.StrVal)
}

// state computes the pod's status the way the kubelet does.
func (w *podWorker) state() runtime.PodState {
	w.mu.Lock()
	defer w.mu.Unlock()
	pod := w.spec.Pod
	st := runtime.PodState{UID: w.spec.UID, Namespace: pod.Namespace, Name: pod.Name}
	s := &st.Status
	s.PodIP = w.sandbox.IP
	if s.PodIP != "" {
		s.PodIPs = []manifests.PodIP{{IP: s.PodIP}}
	}
	start := manifests.NewTime(w.startTime)
	s.StartTime = &start
	s.Reason, s.Message = w.reason, w.message

	initialized := true
	for _, cs := range w.inits {
		s.InitContainerStatuses = append(s.InitContainerStatuses, cs.status())
		if t := cs.state.Terminated; t == nil || t.ExitCode != 0 {
			initialized = false
		}
	}
	allReady := len(w.apps) > 0
	for _, cs := range w.apps {
		s.ContainerStatuses = append(s.ContainerStatuses, cs.status())
		allReady = allReady && cs.ready
	}
	s.Phase = w.phase(initialized)
	now := manifests.NewTime(time.Now())
	cond := func(t manifests.PodConditionType, ok bool) manifests.PodCondition {
		c := manifests.PodCondition{Type: t, Status: manifests.ConditionFalse, LastTransitionTime: now}
		if ok {
			c.Status = manifests.ConditionTrue
		}
		return c
	}
	s.Conditions = []manifests.PodCondition{
		cond(manifests.PodScheduled, true),
		cond(manifests.PodInitialized, initialized),
		cond(manifests.ContainersReady, allReady),
		cond(manifests.PodReady, allReady),
	}
	return st
}

func (cs *ctrState) status() manifests.ContainerStatus {
	started := cs.started
	return manifests.ContainerStatus{
		Name:         cs.spec.Name,
		State:        cs.state,
		LastState:    cs.last,
		Ready:        cs.ready,
		RestartCount: cs.restarts,
		Image:        cs.imageRef,
		ImageID:      cs.imageID,
		ContainerID:  cs.id,
		Started:      &started,
	}
}

// phase follows the kubelet's getPhase.
func (w *podWorker) phase(initialized bool) manifests.PodPhase {
	policy := w.spec.Pod.Spec.RestartPolicy
	if w.initFailed {
		return manifests.PodFailed
	}
	if !initialized {
		return manifests.PodPending
	}
	var running, waitingN, stopped, succeeded int
	for _, cs := range w.apps {
		switch {
		case cs.state.Running != nil:
			running++
		case cs.state.Terminated != nil:
			stopped++
			if cs.state.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.state.Waiting != nil:
			if cs.last.Terminated != nil {
				stopped++
			} else {
				waitingN++
			}
		}
	}
	switch {
	case waitingN > 0:
		return manifests.PodPending
	case running > 0:
		return manifests.PodRunning
	case stopped > 0:
		switch policy {
		case manifests.RestartPolicyAlways:
			return manifests.PodRunning
		case manifests.RestartPolicyOnFailure:
			if stopped == succeeded {
				return manifests.PodSucceeded
			}
			return manifests.PodRunning
		default:
			if stopped == succeeded {
				return manifests.PodSucceeded
			}
			return manifests.PodFailed
		}
	}
	return manifests.PodPending
}

// ErrImageNeverPull is returned by drivers when an image is missing and its pull policy is Never.
var ErrImageNeverPull = errors.New("image is not present and its pull policy is Never")
