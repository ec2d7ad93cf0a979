package lifecycle

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// Config configures a Manager.
type Config struct {
	Driver  Driver
	Policy  Policy
	Backoff Backoff // crash-loop and image-pull backoff; zero: Kubernetes' 10 s → 5 min
	Logger  *slog.Logger
	// Node is the node the pods run on: its name, addresses and allocatable resources, for
	// the downward API and the pods' status.
	Node NodeInfo
	// EvictionInterval is how often the pods' local storage is measured when the Driver is a
	// StorageMeter (0: DefaultEvictionInterval; negative: never, so no pod is evicted).
	EvictionInterval time.Duration
	// StateDir keeps the Manager's own state (the pods it evicted, so that a new process does
	// not start them again). Empty: evictions last as long as the process.
	StateDir string
}

// Manager implements runtime.Runtime over a Driver: one worker per pod drives the pod's
// containers through their lives.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	changes chan string

	mu      sync.Mutex
	pods    map[string]*podWorker
	evicted map[string]runtime.PodState // by UID: pods evicted, with their final state
	closed  bool
	wg      sync.WaitGroup
}

var _ runtime.Runtime = (*Manager)(nil)

// New returns a Manager. Pods that an earlier process started keep running; EnsurePod with the
// same UID adopts them.
func New(cfg Config) (*Manager, error) {
	if cfg.Driver == nil {
		return nil, errors.New("lifecycle: a Driver is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Policy.node = cfg.Node
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		changes: make(chan string, 1024),
		pods:    map[string]*podWorker{},
		evicted: map[string]runtime.PodState{},
	}
	if err := m.loadEvictions(); err != nil {
		cancel()
		return nil, err
	}
	every := cmp.Or(cfg.EvictionInterval, DefaultEvictionInterval)
	if meter, ok := cfg.Driver.(StorageMeter); ok && every > 0 {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.runEviction(meter, every)
		}()
	}
	return m, nil
}

// Changes delivers the UID of a pod whose status changed (see runtime.Runtime).
func (m *Manager) Changes() <-chan string { return m.changes }

func (m *Manager) notify(uid string) {
	select {
	case m.changes <- uid:
	default: // the reader is behind; it relists anyway
	}
}

// EnsurePod starts a worker for the pod unless one runs already.
func (m *Manager) EnsurePod(ctx context.Context, spec *runtime.PodSpec) error {
	if spec == nil || spec.Pod == nil || spec.UID == "" {
		return errors.New("ensure pod: a pod and its UID are required")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("ensure pod: the runtime is closed")
	}
	if _, ok := m.pods[spec.UID]; ok {
		return nil
	}
	spec, err := clonePodSpec(spec)
	if err != nil {
		return err
	}
	w := newPodWorker(m, spec)
	m.pods[spec.UID] = w
	if _, evicted := m.evicted[spec.UID]; evicted {
		close(w.done) // an earlier process evicted the pod: it is not started again
		return nil
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.run()
	}()
	m.notify(spec.UID)
	return nil
}

// RemovePod stops and removes the pod, whether a worker runs it or an earlier process left it,
// as the kubelet stops a pod: preStop hooks first, app containers, then sidecars in reverse
// order, all within the grace period (see terminate). For a pod no worker runs, the hooks and
// the grace period are those the driver kept with its containers.
func (m *Manager) RemovePod(ctx context.Context, uid string, grace *time.Duration) error {
	m.mu.Lock()
	w := m.pods[uid]
	m.mu.Unlock()
	if w != nil {
		w.stop()
	}
	d := m.cfg.Driver
	var ctrs []ContainerInfo
	all, err := d.Containers(ctx, uid)
	if err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	for _, c := range all {
		if c.Meta.PodUID == uid {
			ctrs = append(ctrs, c)
		}
	}
	sb, err := m.sandboxOf(ctx, w, uid)
	if err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	var targets []stopTarget
	for _, c := range ctrs {
		if c.Status == ContainerRunning {
			targets = append(targets, stopTarget{info: c, order: sidecarOrder(w, c.Meta)})
		}
	}
	var errs []error
	for _, r := range m.terminate(ctx, sb, targets, removeGrace(w, ctrs, grace)) {
		if !errors.Is(r.err, runtime.ErrNotFound) {
			errs = append(errs, r.err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	errs = make([]error, len(ctrs))
	var wg sync.WaitGroup
	for i, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.RemoveContainer(ctx, c.ID); err != nil {
				errs[i] = fmt.Errorf("remove container %s: %w", c.Meta.Name, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	if err := d.RemoveSandbox(ctx, uid); err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	m.mu.Lock()
	if m.pods[uid] == w {
		delete(m.pods, uid)
	}
	err = m.forgetEvictionLocked(uid)
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	m.notify(uid)
	return nil
}

// sandboxOf returns the pod's sandbox: the worker's, else the driver's (a zero Sandbox when
// there is none: hooks that need its network then fail and the containers are stopped anyway).
func (m *Manager) sandboxOf(ctx context.Context, w *podWorker, uid string) (Sandbox, error) {
	if w != nil {
		if sb := w.currentSandbox(); sb.UID != "" {
			return sb, nil
		}
	}
	sbs, err := m.cfg.Driver.Sandboxes(ctx)
	if err != nil {
		return Sandbox{}, err
	}
	for _, sb := range sbs {
		if sb.UID == uid {
			return sb, nil
		}
	}
	return Sandbox{UID: uid}, nil
}

// removeGrace is the grace period of a pod's removal: the caller's, else the pod's
// terminationGracePeriodSeconds (from the worker's spec, or as kept with its containers), else
// Kubernetes' default.
func removeGrace(w *podWorker, ctrs []ContainerInfo, grace *time.Duration) time.Duration {
	switch {
	case grace != nil:
		return *grace
	case w != nil:
		return podGrace(w.spec.Pod.Spec.TerminationGracePeriodSeconds)
	}
	for _, c := range ctrs {
		if c.Meta.GracePeriodSeconds != nil {
			return podGrace(c.Meta.GracePeriodSeconds)
		}
	}
	return podGrace(nil)
}

// sidecarOrder is a sidecar's position among the pod's init containers when the worker knows
// the pod (-1 otherwise: sidecars then only wait for the app containers).
func sidecarOrder(w *podWorker, meta ContainerMeta) int {
	if w == nil || !meta.Sidecar {
		return -1
	}
	for _, cs := range w.inits {
		if cs.spec.Name == meta.Name {
			return cs.index
		}
	}
	return -1
}

// PodStatus reports one pod.
func (m *Manager) PodStatus(ctx context.Context, uid string) (runtime.PodState, error) {
	pods, err := m.Pods(ctx)
	if err != nil {
		return runtime.PodState{}, err
	}
	for _, p := range pods {
		if p.UID == uid {
			return p, nil
		}
	}
	return runtime.PodState{}, fmt.Errorf("pod %s: %w", uid, runtime.ErrNotFound)
}

// Pods lists the pods run by workers and those an earlier process left behind.
func (m *Manager) Pods(ctx context.Context) ([]runtime.PodState, error) {
	m.mu.Lock()
	workers := make([]*podWorker, 0, len(m.pods))
	for _, w := range m.pods {
		workers = append(workers, w)
	}
	evicted := make(map[string]runtime.PodState, len(m.evicted))
	for uid, st := range m.evicted {
		evicted[uid] = st
	}
	m.mu.Unlock()

	var out []runtime.PodState
	known := map[string]bool{}
	for _, w := range workers {
		st, ok := evicted[w.spec.UID]
		if !ok {
			st = w.state()
		}
		out = append(out, m.withHost(st))
		known[w.spec.UID] = true
	}
	sbs, err := m.cfg.Driver.Sandboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var ctrs []ContainerInfo
	for _, sb := range sbs {
		if known[sb.UID] {
			continue
		}
		if ctrs == nil {
			if ctrs, err = m.cfg.Driver.Containers(ctx, ""); err != nil {
				return nil, fmt.Errorf("list pods: %w", err)
			}
		}
		if st, ok := evicted[sb.UID]; ok {
			out = append(out, m.withHost(st))
			continue
		}
		out = append(out, orphanState(sb, ctrs))
	}
	slices.SortFunc(out, func(a, b runtime.PodState) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID))
	})
	return out, nil
}

// withHost adds the node's address to a pod's status.
func (m *Manager) withHost(st runtime.PodState) runtime.PodState {
	if ips := m.cfg.Node.HostIPs; len(ips) > 0 {
		st.Status.HostIP = ips[0]
	}
	return st
}

// orphanState describes a pod that no worker runs: it is Running while a container runs.
func orphanState(sb Sandbox, ctrs []ContainerInfo) runtime.PodState {
	st := runtime.PodState{UID: sb.UID, Namespace: sb.Namespace, Name: sb.Name}
	st.Status.Phase = manifests.PodUnknown
	st.Status.PodIP = sb.IP
	st.Status.Reason = "NotManaged"
	if !sb.StartTime.IsZero() {
		start := manifests.NewTime(sb.StartTime)
		st.Status.StartTime = &start
	}
	st.Status.Message = "left by an earlier process and not ensured since"
	for _, c := range latestContainers(sb.UID, ctrs) {
		if c.Status == ContainerRunning {
			st.Status.Phase = manifests.PodRunning
		}
		cs := manifests.ContainerStatus{Name: c.Meta.Name, RestartCount: c.Meta.Attempt, ContainerID: c.ID, Image: c.ImageRef, ImageID: c.ImageID}
		cs.State = driverState(c)
		if c.Meta.Init {
			st.Status.InitContainerStatuses = append(st.Status.InitContainerStatuses, cs)
		} else {
			st.Status.ContainerStatuses = append(st.Status.ContainerStatuses, cs)
		}
	}
	capMessages(&st.Status, len(st.Status.InitContainerStatuses)+len(st.Status.ContainerStatuses))
	return st
}

// latestContainers returns, per container name of a pod, the container with the highest attempt.
func latestContainers(uid string, ctrs []ContainerInfo) []ContainerInfo {
	latest := map[string]ContainerInfo{}
	for _, c := range ctrs {
		if c.Meta.PodUID != uid {
			continue
		}
		if old, ok := latest[c.Meta.Name]; !ok || c.Meta.Attempt > old.Meta.Attempt {
			latest[c.Meta.Name] = c
		}
	}
	out := make([]ContainerInfo, 0, len(latest))
	for _, c := range latest {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b ContainerInfo) int { return cmp.Compare(a.Meta.Name, b.Meta.Name) })
	return out
}

func driverState(c ContainerInfo) manifests.ContainerState {
	switch c.Status {
	case ContainerRunning:
		return manifests.ContainerState{Running: &manifests.ContainerStateRunning{StartedAt: manifests.NewTime(c.StartedAt)}}
	case ContainerExited:
		return manifests.ContainerState{Terminated: terminated(c)}
	default:
		return manifests.ContainerState{Waiting: &manifests.ContainerStateWaiting{Reason: "ContainerCreating"}}
	}
}

func terminated(c ContainerInfo) *manifests.ContainerStateTerminated {
	t := &manifests.ContainerStateTerminated{
		ExitCode:    c.ExitCode,
		Signal:      c.Signal,
		StartedAt:   manifests.NewTime(c.StartedAt),
		FinishedAt:  manifests.NewTime(c.FinishedAt),
		ContainerID: c.ID,
		Message:     c.Message,
	}
	switch {
	case c.OOMKilled:
		t.Reason = "OOMKilled"
	case c.ExitCode == 0:
		t.Reason = "Completed"
	default:
		t.Reason = "Error"
	}
	return t
}

// Logs writes a container's log.
func (m *Manager) Logs(ctx context.Context, uid, container string, opts runtime.LogOptions, w io.Writer) error {
	id, err := m.containerID(ctx, uid, container, opts.Previous)
	if err != nil {
		return err
	}
	return m.cfg.Driver.Logs(ctx, id, opts, w)
}

// Exec runs a process in a running container.
func (m *Manager) Exec(ctx context.Context, uid, container string, opts runtime.ExecOptions) (int, error) {
	id, err := m.containerID(ctx, uid, container, false)
	if err != nil {
		return -1, err
	}
	return m.cfg.Driver.Exec(ctx, id, opts)
}

// containerID finds the current (or previous) container of a pod by name.
func (m *Manager) containerID(ctx context.Context, uid, name string, previous bool) (string, error) {
	ctrs, err := m.cfg.Driver.Containers(ctx, uid)
	if err != nil {
		return "", err
	}
	var found []ContainerInfo
	for _, c := range ctrs {
		if c.Meta.PodUID == uid && (c.Meta.Name == name || name == "") {
			found = append(found, c)
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("container %q of pod %s: %w", name, uid, runtime.ErrNotFound)
	}
	if name == "" {
		names := map[string]bool{}
		for _, c := range found {
			names[c.Meta.Name] = true
		}
		if len(names) > 1 {
			return "", fmt.Errorf("pod %s has %d containers: name one", uid, len(names))
		}
	}
	slices.SortFunc(found, func(a, b ContainerInfo) int { return cmp.Compare(b.Meta.Attempt, a.Meta.Attempt) })
	if previous {
		if len(found) < 2 {
			return "", fmt.Errorf("previous run of container %q of pod %s: %w", name, uid, runtime.ErrNotFound)
		}
		return found[1].ID, nil
	}
	return found[0].ID, nil
}

// Close stops every worker and probe. Containers keep running.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

// clonePodSpec deep-copies a pod spec (through JSON, the form it is stored in), so that a worker
// never shares memory with its caller.
func clonePodSpec(spec *runtime.PodSpec) (*runtime.PodSpec, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("ensure pod %s: copy the spec: %w", spec.UID, err)
	}
	out := new(runtime.PodSpec)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("ensure pod %s: copy the spec: %w", spec.UID, err)
	}
	return out, nil
}
