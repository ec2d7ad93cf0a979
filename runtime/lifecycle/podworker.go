package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// podWorker drives one pod: sandbox, init containers and sidecars, app containers.
type podWorker struct {
	m      *Manager
	spec   *runtime.PodSpec
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	sandbox     Sandbox
	startTime   time.Time
	message     string // pod-level problem (sandbox, volumes)
	reason      string
	inits       []*ctrState
	apps        []*ctrState
	initialized bool // every regular init container completed and every sidecar started
}

// ctrState is the observed state of one container of the pod, across its restarts.
type ctrState struct {
	spec     *manifests.Container
	init     bool
	sidecar  bool // an init container with restartPolicy Always
	index    int  // position among the pod's init or app containers
	id       string
	imageRef string
	imageID  string
	restarts int32
	state    manifests.ContainerState
	last     manifests.ContainerState
	ready    bool
	started  bool
	crashes  int    // consecutive exits since the count was last reset
	hookErr  string // the postStart hook of the last run failed with this message

	firstStart     chan struct{} // closed when the container has started for the first time
	firstStartOnce sync.Once
}

// killReason says why the runtime stops a running container; it picks the grace period.
type killReason int

const (
	killLiveness killReason = iota
	killStartup
	killPostStart
)

func (r killReason) String() string {
	switch r {
	case killLiveness:
		return "liveness probe failed"
	case killStartup:
		return "startup probe failed"
	}
	return "postStart hook failed"
}

func newPodWorker(m *Manager, spec *runtime.PodSpec) *podWorker {
	ctx, cancel := context.WithCancel(m.ctx)
	w := &podWorker{m: m, spec: spec, ctx: ctx, cancel: cancel, done: make(chan struct{}), startTime: time.Now()}
	for i := range spec.Pod.Spec.InitContainers {
		c := &spec.Pod.Spec.InitContainers[i]
		w.inits = append(w.inits, &ctrState{spec: c, init: true, sidecar: isSidecar(c), index: i, imageRef: c.Image,
			state: waiting("PodInitializing", ""), firstStart: make(chan struct{})})
	}
	for i := range spec.Pod.Spec.Containers {
		c := &spec.Pod.Spec.Containers[i]
		reason := "ContainerCreating"
		if len(w.inits) > 0 {
			reason = "PodInitializing"
		}
		w.apps = append(w.apps, &ctrState{spec: c, index: i, imageRef: c.Image, state: waiting(reason, ""), firstStart: make(chan struct{})})
	}
	return w
}

// isSidecar reports whether an init container is a sidecar (restartPolicy Always).
func isSidecar(c *manifests.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == manifests.ContainerRestartPolicyAlways
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

// sleep waits d or until ctx ends; it reports whether to go on.
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
	if !w.makeSandbox() {
		return
	}
	existing, err := w.m.cfg.Driver.Containers(w.ctx, w.spec.UID)
	if err != nil && w.ctx.Err() != nil {
		return
	}
	adopted := map[string]ContainerInfo{}
	for _, c := range latestContainers(w.spec.UID, existing) {
		adopted[c.Meta.Name] = c
	}

	// Sidecars run beside the pod until no app container will run again (or the pod goes).
	sidecarCtx, stopSidecars := context.WithCancel(w.ctx)
	defer stopSidecars()
	var sidecars sync.WaitGroup
	if w.runInits(sidecarCtx, &sidecars, adopted) {
		w.update(func() { w.initialized = true })
		w.runApps(adopted)
	}
	stopSidecars()
	sidecars.Wait()
	if w.ctx.Err() != nil {
		return // the pod is being removed or the runtime closed: containers are left as they are
	}
	w.finish()
}

// makeSandbox creates the sandbox, retried with backoff until it exists; it reports whether the
// worker goes on.
func (w *podWorker) makeSandbox() bool {
	d := w.m.cfg.Driver
	log := w.m.log.With("pod", w.spec.Pod.Namespace+"/"+w.spec.Pod.Name, "uid", w.spec.UID)
	for tries := 1; ; tries++ {
		sbCfg, err := sandboxConfig(w.spec, w.m.cfg.Policy)
		if err == nil {
			sbCfg.StartTime = w.startTime
			var sb Sandbox
			if sb, err = d.CreateSandbox(w.ctx, sbCfg); err == nil {
				w.update(func() {
					w.sandbox, w.message, w.reason = sb, "", ""
					if !sb.StartTime.IsZero() {
						w.startTime = sb.StartTime // a re-adopted pod keeps its start time
					}
				})
				return true
			}
		}
		if w.ctx.Err() != nil {
			return false
		}
		log.Warn("pod sandbox", "err", err)
		reason := "FailedCreatePodSandBox"
		if isConfigError(err) {
			reason = "CreateContainerConfigError"
		}
		w.update(func() { w.reason, w.message = reason, err.Error() })
		if !w.sleep(w.ctx, w.m.cfg.Backoff.Retry(tries)) {
			return false
		}
	}
}

// runInits runs the init containers in order: a regular one to completion, a sidecar until it
// has started (then it keeps running, restarted whatever the pod's restartPolicy, in a goroutine
// counted by sidecars and stopped with sidecarCtx). A pod whose app containers ran already (re-
// adopted) was initialized before: its regular init containers do not run again and its
// sidecars are not waited for. It reports whether the pod is initialized.
func (w *podWorker) runInits(sidecarCtx context.Context, sidecars *sync.WaitGroup, adopted map[string]ContainerInfo) bool {
	initializedBefore := false
	for _, cs := range w.apps {
		initializedBefore = initializedBefore || adopted[cs.spec.Name].ID != ""
	}
	for _, cs := range w.inits {
		a := adopted[cs.spec.Name]
		switch {
		case cs.sidecar:
			sidecars.Add(1)
			go func() {
				defer sidecars.Done()
				w.runSidecar(sidecarCtx, cs, a)
			}()
			if initializedBefore {
				continue
			}
			select {
			case <-cs.firstStart:
			case <-w.ctx.Done():
				return false
			}
		case initializedBefore:
			if a.ID != "" {
				w.update(func() { cs.id, cs.restarts, cs.imageID, cs.state = a.ID, a.Meta.Attempt, a.ImageID, driverState(a) })
			}
		default:
			if !w.runInit(cs, a) {
				return false
			}
		}
	}
	return true
}

// runApps runs the app containers side by side until none will run again.
func (w *podWorker) runApps(adopted map[string]ContainerInfo) {
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

// runInit runs a regular init container until it succeeds; it reports whether the pod goes on.
func (w *podWorker) runInit(cs *ctrState, adopted ContainerInfo) bool {
	policy := w.spec.Pod.Spec.RestartPolicy
	for {
		info, ok := w.runOnce(w.ctx, cs, &adopted)
		if !ok {
			return false
		}
		if info.ExitCode == 0 && !info.OOMKilled {
			return true
		}
		if policy == manifests.RestartPolicyNever {
			return false
		}
		if !w.backoff(w.ctx, cs, info) {
			return false
		}
	}
}

// runSidecar keeps a sidecar running until ctx ends, restarting it with backoff whenever it
// exits, whatever the pod's restartPolicy.
func (w *podWorker) runSidecar(ctx context.Context, cs *ctrState, adopted ContainerInfo) {
	for {
		info, ok := w.runOnce(ctx, cs, &adopted)
		if !ok || !w.backoff(ctx, cs, info) {
			return
		}
	}
}

// runApp runs an app container for the life of the pod, restarting it per restartPolicy.
func (w *podWorker) runApp(cs *ctrState, adopted ContainerInfo) {
	policy := w.spec.Pod.Spec.RestartPolicy
	for {
		info, ok := w.runOnce(w.ctx, cs, &adopted)
		if !ok {
			return
		}
		switch {
		case policy == manifests.RestartPolicyNever:
			return
		case policy == manifests.RestartPolicyOnFailure && info.ExitCode == 0 && !info.OOMKilled:
			return
		}
		if !w.backoff(w.ctx, cs, info) {
			return
		}
	}
}

// backoff waits before restarting a container that exited; it reports whether to go on.
func (w *podWorker) backoff(ctx context.Context, cs *ctrState, info ContainerInfo) bool {
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
		switch {
		case delay > 0:
			cs.state = waiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				delay.Round(time.Millisecond), cs.spec.Name, w.spec.Pod.Name, w.spec.Pod.Namespace, w.spec.UID))
		case cs.hookErr != "":
			cs.state = waiting("PostStartHookError", cs.hookErr)
		}
	})
	if delay > 0 && !w.sleep(ctx, delay) {
		return false
	}
	w.update(func() { cs.restarts++ })
	return true
}

// runOnce brings one run of a container to its end: it adopts the container an earlier process
// started, or pulls the image and starts a new one and runs its postStart hook; then it probes
// the container until it exits, stopping it (preStop first) when a liveness or startup probe
// fails. It returns the final state and whether to go on (false when ctx ended).
func (w *podWorker) runOnce(ctx context.Context, cs *ctrState, adopted *ContainerInfo) (ContainerInfo, bool) {
	d := w.m.cfg.Driver
	var id string
	var info ContainerInfo
	fresh := adopted.ID == ""
	if !fresh {
		a := *adopted
		*adopted = ContainerInfo{}
		w.update(func() { cs.id, cs.restarts, cs.imageID, cs.hookErr = a.ID, a.Meta.Attempt, a.ImageID, "" })
		if a.Status == ContainerExited {
			w.update(func() { cs.state = driverState(a) })
			return a, true
		}
		id, info = a.ID, a
	} else {
		var ok bool
		if id, info, ok = w.start(ctx, cs); !ok {
			return ContainerInfo{}, false
		}
		w.update(func() { cs.id, cs.hookErr = id, "" })
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
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

	// The container is not running, for its status and its probes, until postStart returned.
	var hookDone chan error
	if h := postStart(cs.spec); fresh && h != nil {
		hookDone = make(chan error, 1)
		sb := w.currentSandbox()
		meta := w.meta(cs, info.Meta.Attempt)
		go func() { hookDone <- w.m.runHook(runCtx, sb, id, meta, postStartHook, h) }()
	}
	kill := make(chan killReason, 1)
	probes := &sync.WaitGroup{}
	running := func() {
		w.update(func() {
			cs.state = manifests.ContainerState{Running: &manifests.ContainerStateRunning{StartedAt: manifests.NewTime(info.StartedAt)}}
			cs.ready, cs.started = false, false
		})
		probes = w.startProbes(runCtx, cs, id, info.StartedAt, kill)
	}
	if hookDone == nil {
		running()
	}

	var final ContainerInfo
	var note string // a hook that failed, for the terminated state's message
	for final.ID == "" {
		select {
		case err := <-hookDone:
			hookDone = nil
			if err == nil {
				running()
				continue
			}
			if runCtx.Err() != nil {
				continue // the worker stops: the wait below ends too
			}
			w.m.log.Warn("postStart hook failed: killing the container", "pod", w.spec.Pod.Namespace+"/"+w.spec.Pod.Name, "container", cs.spec.Name, "err", err)
			note = "FailedPostStartHook: " + err.Error()
			w.update(func() { cs.hookErr = err.Error() })
			if n := w.kill(cs, id, info.Meta.Attempt, killPostStart); n != "" {
				note += "; " + n
			}
		case fin := <-exited:
			final = fin
		case err := <-waitErr:
			stopRun()
			probes.Wait()
			if ctx.Err() != nil {
				return ContainerInfo{}, false
			}
			// The driver lost the container: report it and start over.
			w.m.log.Warn("wait for container", "container", cs.spec.Name, "err", err)
			return ContainerInfo{ID: id, ExitCode: 128, FinishedAt: time.Now(), StartedAt: info.StartedAt}, true
		case why := <-kill:
			w.m.log.Info("restarting container", "pod", w.spec.Pod.Name, "container", cs.spec.Name, "why", why)
			if n := w.kill(cs, id, info.Meta.Attempt, why); n != "" {
				note = n
			}
		}
	}
	stopRun()
	probes.Wait()
	final.Message = withNote(note, final.Message)
	w.update(func() {
		cs.state = manifests.ContainerState{Terminated: terminated(final)}
		cs.ready, cs.started = false, false
	})
	return final, true
}

func postStart(c *manifests.Container) *manifests.LifecycleHandler {
	if c.Lifecycle == nil {
		return nil
	}
	return c.Lifecycle.PostStart
}

func (w *podWorker) currentSandbox() Sandbox {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sandbox
}

// kill stops a running container of the pod for why, as the kubelet does: its preStop hook,
// then SIGTERM, then SIGKILL after what is left of the grace period. It returns a note when the
// preStop hook failed.
func (w *podWorker) kill(cs *ctrState, id string, attempt int32, why killReason) string {
	target := stopTarget{info: ContainerInfo{ID: id, Meta: w.meta(cs, attempt)}, order: -1}
	res := w.m.terminate(w.ctx, w.currentSandbox(), []stopTarget{target}, w.grace(cs.spec, why))[0]
	if res.err != nil && w.ctx.Err() == nil {
		w.m.log.Warn("stop container", "container", cs.spec.Name, "err", res.err)
	}
	if res.preStop != nil {
		return "FailedPreStopHook: " + res.preStop.Error()
	}
	return ""
}

// grace is the grace period for stopping a container of the pod for why: the probe's own
// terminationGracePeriodSeconds for a failed liveness or startup probe, else the pod's.
func (w *podWorker) grace(c *manifests.Container, why killReason) time.Duration {
	g := podGrace(w.spec.Pod.Spec.TerminationGracePeriodSeconds)
	var p *manifests.Probe
	switch why {
	case killLiveness:
		p = c.LivenessProbe
	case killStartup:
		p = c.StartupProbe
	}
	if p != nil && p.TerminationGracePeriodSeconds != nil {
		g = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	}
	return g
}

// podGrace turns a terminationGracePeriodSeconds into a duration (nil: Kubernetes' 30 s).
func podGrace(seconds *int64) time.Duration {
	if seconds == nil {
		return manifests.DefaultTerminationGracePeriodSeconds * time.Second
	}
	return time.Duration(*seconds) * time.Second
}

// meta is what the driver keeps with a container of this pod.
func (w *podWorker) meta(cs *ctrState, attempt int32) ContainerMeta {
	m := ContainerMeta{PodUID: w.spec.UID, PodNamespace: w.spec.Pod.Namespace, PodName: w.spec.Pod.Name,
		Name: cs.spec.Name, Init: cs.init, Sidecar: cs.sidecar, Attempt: attempt,
		Ports: cs.spec.Ports, GracePeriodSeconds: w.spec.Pod.Spec.TerminationGracePeriodSeconds}
	if lc := cs.spec.Lifecycle; lc != nil {
		m.PreStop = lc.PreStop
	}
	return m
}

// terminationMessage returns a container's termination message path and policy, defaulted as
// the API server defaults them.
func terminationMessage(c *manifests.Container) (string, manifests.TerminationMessagePolicy) {
	p, pol := c.TerminationMessagePath, c.TerminationMessagePolicy
	if p == "" {
		p = manifests.DefaultTerminationMessagePath
	}
	if pol == "" {
		pol = manifests.TerminationMessageReadFile
	}
	return p, pol
}

// finish stops what still runs once no app container will run again (the sidecars of a
// completed pod, of one whose init container failed): sidecars in reverse order, within the
// pod's grace period, as the kubelet stops a pod. Sidecars stopped that way, or waiting for a
// restart, end terminated; the pod's phase then comes from its app containers.
func (w *podWorker) finish() {
	d := w.m.cfg.Driver
	ctrs, err := d.Containers(w.ctx, w.spec.UID)
	if err != nil {
		w.m.log.Warn("list containers to stop", "pod", w.spec.Pod.Namespace+"/"+w.spec.Pod.Name, "err", err)
		return
	}
	byName := map[string]*ctrState{}
	for _, cs := range append(append([]*ctrState{}, w.inits...), w.apps...) {
		byName[cs.spec.Name] = cs
	}
	var targets []stopTarget
	var gone []ContainerInfo // exited while their loop was being stopped
	for _, c := range latestContainers(w.spec.UID, ctrs) {
		cs := byName[c.Meta.Name]
		switch {
		case cs == nil:
		case c.Status == ContainerRunning:
			targets = append(targets, stopTarget{info: ContainerInfo{ID: c.ID, Meta: w.meta(cs, c.Meta.Attempt)}, order: cs.sidecarOrder()})
		case c.Status == ContainerExited:
			gone = append(gone, c)
		}
	}
	results := w.m.terminate(w.ctx, w.currentSandbox(), targets, podGrace(w.spec.Pod.Spec.TerminationGracePeriodSeconds))
	w.update(func() {
		for _, c := range gone {
			if cs := byName[c.Meta.Name]; cs.state.Running != nil {
				cs.state = driverState(c)
				cs.ready, cs.started = false, false
			}
		}
		for i, r := range results {
			cs := byName[targets[i].info.Meta.Name]
			if r.err != nil {
				w.m.log.Warn("stop container", "container", cs.spec.Name, "err", r.err)
				continue
			}
			if r.preStop != nil {
				r.info.Message = withNote("FailedPreStopHook: "+r.preStop.Error(), r.info.Message)
			}
			cs.state = manifests.ContainerState{Terminated: terminated(r.info)}
			cs.ready, cs.started = false, false
		}
		for _, cs := range w.inits {
			if cs.sidecar && cs.state.Waiting != nil && cs.last.Terminated != nil {
				cs.state = cs.last // it will not be restarted
			}
		}
	})
}

// sidecarOrder is a sidecar's position among the init containers (-1 for other containers).
func (cs *ctrState) sidecarOrder() int {
	if cs.sidecar {
		return cs.index
	}
	return -1
}

// start pulls the image and starts a new container, retrying with backoff; ok is false when ctx
// ends.
func (w *podWorker) start(ctx context.Context, cs *ctrState) (id string, info ContainerInfo, ok bool) {
	d := w.m.cfg.Driver
	tries, pulls := 0, 0
	retry := func(reason string, err error) bool {
		w.update(func() { cs.state = waiting(reason, err.Error()) })
		tries++
		return w.sleep(ctx, w.m.cfg.Backoff.Retry(tries))
	}
	for {
		if ctx.Err() != nil {
			return "", info, false
		}
		w.mu.Lock()
		sb := w.sandbox
		attempt := cs.restarts
		w.mu.Unlock()

		img, err := d.EnsureImage(ctx, cs.spec.Image, cs.spec.ImagePullPolicy, pullSecrets(w.spec))
		if err != nil {
			if ctx.Err() != nil {
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
		meta := w.meta(cs, attempt)
		cfg, err := containerConfig(w.spec, sb, cs.spec, img, meta, w.m.cfg.Policy)
		if err != nil {
			if !retry("CreateContainerConfigError", err) {
				return "", info, false
			}
			continue
		}
		cfg.TerminationMessagePath, cfg.TerminationMessagePolicy = terminationMessage(cs.spec)
		// A container of this attempt left by a failed start is replaced.
		w.removeAttempt(cs.spec.Name, attempt)
		id, err = d.StartContainer(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return "", info, false
			}
			if !retry("CreateContainerError", err) {
				return "", info, false
			}
			continue
		}
		w.removeOlder(cs.spec.Name, attempt)
		info = ContainerInfo{ID: id, Meta: meta, StartedAt: time.Now()}
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
func (w *podWorker) startProbes(ctx context.Context, cs *ctrState, id string, started time.Time, kill chan<- killReason) *sync.WaitGroup {
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
		cs.firstStartOnce.Do(func() { close(cs.firstStart) })
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
				case kill <- killStartup:
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
					case kill <- killLiveness:
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
	sb := w.currentSandbox()
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
		port, err := resolvePort(cs.spec.Name, cs.spec.Ports, p.HTTPGet.Port)
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
		port, err := resolvePort(cs.spec.Name, cs.spec.Ports, p.TCPSocket.Port)
		host := p.TCPSocket.Host
		return func(ctx context.Context) error {
			if err != nil {
				return err
			}
			return d.ProbeTCP(ctx, sb, host, port)
		}
	case p.GRPC != nil:
		gp := GRPCProbe{Port: int(p.GRPC.Port)}
		if p.GRPC.Service != nil {
			gp.Service = *p.GRPC.Service
		}
		return func(ctx context.Context) error { return d.ProbeGRPC(ctx, sb, gp) }
	}
	return func(context.Context) error { return errors.New("probe has no handler") }
}

// resolvePort turns a probe's or hook's port (a number, a container port name, or a number
// written as a string) into a number, as the kubelet does.
func resolvePort(container string, ports []manifests.ContainerPort, p manifests.IntOrString) (int, error) {
	port := int(p.IntVal)
	if p.Type != manifests.Int {
		found := false
		for _, cp := range ports {
			if cp.Name == p.StrVal {
				port, found = int(cp.ContainerPort), true
				break
			}
		}
		if !found {
			n, err := strconv.Atoi(p.StrVal)
			if err != nil {
				return 0, fmt.Errorf("container %q has no port named %q", container, p.StrVal)
			}
			port = n
		}
	}
	if port <= 0 || port > 65535 {
		return 0, fmt.Errorf("container %q: port %d is not between 1 and 65535", container, port)
	}
	return port, nil
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

	// Ready: every app container ready, and every sidecar (their readiness counts).
	allReady := len(w.apps) > 0
	for _, cs := range w.inits {
		s.InitContainerStatuses = append(s.InitContainerStatuses, cs.status())
		if cs.sidecar {
			allReady = allReady && cs.ready && cs.state.Running != nil
		}
	}
	for _, cs := range w.apps {
		s.ContainerStatuses = append(s.ContainerStatuses, cs.status())
		allReady = allReady && cs.ready
	}
	capMessages(s, len(w.inits)+len(w.apps))
	initialized := len(w.inits) == 0 || w.initialized
	s.Phase = w.phase()
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

// maxPodMessages bounds the termination messages of one pod's statuses, shared evenly between
// its containers: the kubelet's MaxPodTerminationMessageLogLength.
const maxPodMessages = 12 << 10

// capMessages cuts each termination message of the statuses to the pod's share of
// maxPodMessages (their first bytes), as the kubelet's status manager does.
func capMessages(s *manifests.PodStatus, containers int) {
	if containers == 0 {
		return
	}
	per := maxPodMessages / containers
	cut := func(st *manifests.ContainerState) {
		if t := st.Terminated; t != nil && len(t.Message) > per {
			c := *t
			c.Message = c.Message[:per]
			st.Terminated = &c
		}
	}
	for _, list := range [][]manifests.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
		for i := range list {
			cut(&list[i].State)
			cut(&list[i].LastState)
		}
	}
}

// status is the container's status as the kubelet reports it: started while running and past
// its startup probe; a regular init container is ready once it completed.
func (cs *ctrState) status() manifests.ContainerStatus {
	started := cs.started && cs.state.Running != nil
	ready := cs.ready
	if cs.init && !cs.sidecar {
		t := cs.state.Terminated
		ready = t != nil && t.ExitCode == 0
	}
	return manifests.ContainerStatus{
		Name:         cs.spec.Name,
		State:        cs.state,
		LastState:    cs.last,
		Ready:        ready,
		RestartCount: cs.restarts,
		Image:        cs.imageRef,
		ImageID:      cs.imageID,
		ContainerID:  cs.id,
		Started:      &started,
	}
}

// phase follows the kubelet's getPhase, sidecars included: they keep a pod Pending until they
// have started (unless an app container ran already) and count as running, but an exited sidecar
// counts for nothing, so a completed pod's phase comes from its app containers.
func (w *podWorker) phase() manifests.PodPhase {
	policy := w.spec.Pod.Spec.RestartPolicy
	var pendingInit, failedInit, pendingSidecars int
	var running, waitingN, stopped, succeeded int
	for _, cs := range w.inits {
		st, last := cs.state, cs.last
		if !cs.sidecar {
			switch {
			case st.Terminated != nil:
				if st.Terminated.ExitCode != 0 {
					failedInit++
				}
			case st.Waiting != nil && last.Terminated != nil:
				if last.Terminated.ExitCode != 0 {
					failedInit++
				}
			default: // running, or not run yet
				pendingInit++
			}
			continue
		}
		switch {
		case st.Running != nil:
			if !cs.started {
				pendingSidecars++
			}
			running++
		case st.Terminated != nil, st.Waiting != nil && last.Terminated != nil:
			// An exited sidecar does not count for the phase.
		default:
			pendingSidecars++
			waitingN++
		}
	}
	appStarted := false
	for _, cs := range w.apps {
		switch {
		case cs.state.Running != nil:
			running++
			appStarted = true
		case cs.state.Terminated != nil:
			stopped++
			appStarted = true
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
	if failedInit > 0 && policy == manifests.RestartPolicyNever {
		return manifests.PodFailed
	}
	switch {
	case pendingInit > 0, pendingSidecars > 0 && !appStarted, waitingN > 0:
		return manifests.PodPending
	case running > 0:
		return manifests.PodRunning
	case stopped > 0:
		switch {
		case policy == manifests.RestartPolicyAlways:
			return manifests.PodRunning
		case stopped == succeeded:
			return manifests.PodSucceeded
		case policy == manifests.RestartPolicyNever:
			return manifests.PodFailed
		}
		return manifests.PodRunning
	}
	return manifests.PodPending
}

// ErrImageNeverPull is returned by drivers when an image is missing and its pull policy is Never.
var ErrImageNeverPull = errors.New("image is not present and its pull policy is Never")
