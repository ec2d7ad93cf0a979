package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// DefaultEvictionInterval is how often the Manager measures the local storage of pods, as the
// kubelet's eviction manager does every 10 s.
const DefaultEvictionInterval = 10 * time.Second

// The reason of an evicted pod, and the kubelet's messages for local storage evictions.
const (
	reasonEvicted         = "Evicted"
	emptyDirMessage       = "Usage of EmptyDir volume %q exceeds the limit %q."
	podStorageMessage     = "Pod ephemeral local storage usage exceeds the total limit of containers %s."
	containerStorageLimit = "Container %s exceeded its local ephemeral storage limit %q."
)

// StorageMeter is implemented by drivers that can measure the local storage of a pod. With
// such a driver the Manager evicts pods that use more than their ephemeral-storage limits or
// their emptyDir sizeLimits, as the kubelet's eviction manager does.
type StorageMeter interface {
	// PodStorage measures the disk space a pod uses now. Unknown UIDs give ErrNotFound.
	PodStorage(ctx context.Context, uid string) (PodStorage, error)
}

// PodStorage is the local disk space a pod uses, in bytes.
type PodStorage struct {
	// Containers maps each container name to the writable layer and logs of its latest run.
	Containers map[string]int64
	// Volumes maps the name of each volume kept on the node's disk (emptyDir of the default
	// medium, configMap, downwardAPI) to the space its files take. Volumes on tmpfs are left out.
	Volumes map[string]int64
}

// storageLimited reports whether the pod has a limit that local storage eviction enforces.
func storageLimited(pod *manifests.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && !v.EmptyDir.SizeLimit.IsZero() {
			return true
		}
	}
	_, found, _ := podLimit(pod, manifests.ResourceEphemeralStorage)
	return found
}

// storageViolation decides, as the kubelet's localStorageEviction, whether a pod must be
// evicted for its local storage, and why: first an emptyDir over its sizeLimit, then the pod
// over the sum of its containers' ephemeral-storage limits, then a container over its own.
func storageViolation(pod *manifests.Pod, use PodStorage) (string, bool) {
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Value() <= 0 {
			continue
		}
		if used, ok := use.Volumes[v.Name]; ok && used > v.EmptyDir.SizeLimit.Value() {
			return fmt.Sprintf(emptyDirMessage, v.Name, v.EmptyDir.SizeLimit.String()), true
		}
	}
	if limit, found, _ := podLimit(pod, manifests.ResourceEphemeralStorage); found {
		var total int64
		for _, n := range use.Containers {
			total += n
		}
		for _, n := range use.Volumes {
			total += n
		}
		if total > limit {
			return fmt.Sprintf(podStorageMessage, podLimitString(pod, limit)), true
		}
	}
	for _, c := range pod.Spec.Containers {
		q, ok := c.Resources.Limits[manifests.ResourceEphemeralStorage]
		if !ok || q.Value() == 0 {
			continue
		}
		if used, ok := use.Containers[c.Name]; ok && used > q.Value() {
			return fmt.Sprintf(containerStorageLimit, c.Name, q.String()), true
		}
	}
	return "", false
}

// podLimitString writes the pod's ephemeral-storage limit: as its one container wrote it,
// else as a sum of quantities, with the largest suffix that divides it.
func podLimitString(pod *manifests.Pod, limit int64) string {
	var set []manifests.Quantity
	for _, list := range [][]manifests.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			if q, ok := c.Resources.Limits[manifests.ResourceEphemeralStorage]; ok {
				set = append(set, q)
			}
		}
	}
	if len(set) == 1 && set[0].Value() == limit {
		return set[0].String()
	}
	return formatBytes(limit)
}

// formatBytes writes a byte count with the suffix, binary or decimal, that gives the shortest
// exact number.
func formatBytes(n int64) string {
	best := fmt.Sprint(n)
	if n == 0 {
		return best
	}
	for _, s := range []struct {
		suffix string
		unit   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18}} {
		if n%s.unit == 0 {
			if v := fmt.Sprintf("%d%s", n/s.unit, s.suffix); len(v) < len(best) {
				best = v
			}
		}
	}
	return best
}

// runEviction measures the pods' local storage every interval until the Manager closes.
func (m *Manager) runEviction(meter StorageMeter, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.checkStorage(meter)
		}
	}
}

// checkStorage evicts the pods over their local storage limits.
func (m *Manager) checkStorage(meter StorageMeter) {
	m.mu.Lock()
	var workers []*podWorker
	for uid, w := range m.pods {
		if _, done := m.evicted[uid]; !done && storageLimited(w.spec.Pod) {
			workers = append(workers, w)
		}
	}
	m.mu.Unlock()
	for _, w := range workers {
		if ph := w.state().Status.Phase; ph == manifests.PodSucceeded || ph == manifests.PodFailed {
			continue // only running pods are evicted, as the kubelet's active pods
		}
		use, err := meter.PodStorage(m.ctx, w.spec.UID)
		if err != nil {
			if m.ctx.Err() == nil && !errors.Is(err, runtime.ErrNotFound) {
				m.log.Warn("measure pod storage", "pod", w.spec.Pod.Namespace+"/"+w.spec.Pod.Name, "err", err)
			}
			continue
		}
		if msg, evict := storageViolation(w.spec.Pod, use); evict {
			m.evict(w, msg)
		}
	}
}

// evict kills the pod's containers at once and leaves the pod Failed with reason Evicted, as
// the kubelet does. The pod is not restarted; it stays until it is removed.
func (m *Manager) evict(w *podWorker, msg string) {
	uid := w.spec.UID
	m.mu.Lock()
	current := m.pods[uid] == w
	m.mu.Unlock()
	if !current {
		return // removed meanwhile
	}
	m.log.Warn("evicting pod", "pod", w.spec.Pod.Namespace+"/"+w.spec.Pod.Name, "uid", uid, "reason", msg)
	w.stop()
	// The kill is finished even if the Manager is closing, so that no evicted pod keeps running.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 30*time.Second)
	defer cancel()
	d := m.cfg.Driver
	final := map[string]ContainerInfo{}
	ctrs, err := d.Containers(ctx, uid)
	if err != nil {
		m.log.Warn("evict pod: list containers", "uid", uid, "err", err)
	}
	for _, c := range latestContainers(uid, ctrs) {
		if c.Status == ContainerRunning {
			stopped, err := d.StopContainer(ctx, c.ID, 0)
			if err != nil {
				m.log.Warn("evict pod: stop container", "container", c.Meta.Name, "err", err)
				continue
			}
			c = stopped
		}
		final[c.Meta.Name] = c
	}
	st := evictedState(w.state(), final, msg)
	// Recorded under the lock, so that a RemovePod that ran meanwhile leaves no record behind.
	m.mu.Lock()
	if m.pods[uid] == w {
		m.evicted[uid] = st
		if err := m.saveEviction(st); err != nil {
			m.log.Warn("record eviction", "uid", uid, "err", err)
		}
	}
	m.mu.Unlock()
	m.notify(uid)
}

// evictedState is the pod's last state turned into that of an evicted pod.
func evictedState(st runtime.PodState, final map[string]ContainerInfo, msg string) runtime.PodState {
	s := &st.Status
	s.Phase, s.Reason, s.Message = manifests.PodFailed, reasonEvicted, msg
	for _, list := range [][]manifests.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
		for i := range list {
			cs := &list[i]
			cs.Ready = false
			if c, ok := final[cs.Name]; ok && c.Status == ContainerExited {
				cs.State = manifests.ContainerState{Terminated: terminated(c)}
			} else if cs.State.Running != nil {
				cs.State = manifests.ContainerState{Terminated: &manifests.ContainerStateTerminated{
					ExitCode: 137, Reason: "Error", StartedAt: cs.State.Running.StartedAt, FinishedAt: manifests.NewTime(time.Now())}}
			}
		}
	}
	for i := range s.Conditions {
		if t := s.Conditions[i].Type; t == manifests.PodReady || t == manifests.ContainersReady {
			s.Conditions[i].Status = manifests.ConditionFalse
		}
	}
	return st
}

func (m *Manager) evictionDir() string {
	if m.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(m.cfg.StateDir, "evicted")
}

// saveEviction records an evicted pod so that a new process does not start it again.
func (m *Manager) saveEviction(st runtime.PodState) error {
	dir := m.evictionDir()
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, st.UID+".json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, st.UID+".json"))
}

// loadEvictions reads the evictions an earlier process recorded.
func (m *Manager) loadEvictions() error {
	dir := m.evictionDir()
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read evicted pods: %w", err)
	}
	for _, e := range entries {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("read evicted pods: %w", err)
		}
		var st runtime.PodState
		if err := json.Unmarshal(data, &st); err != nil || st.UID != uid {
			m.log.Warn("ignoring a bad eviction record", "file", e.Name(), "err", err)
			continue
		}
		m.evicted[uid] = st
	}
	return nil
}

// forgetEvictionLocked drops the record of a removed pod; m.mu is held.
func (m *Manager) forgetEvictionLocked(uid string) error {
	delete(m.evicted, uid)
	if dir := m.evictionDir(); dir != "" {
		if err := os.Remove(filepath.Join(dir, uid+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
