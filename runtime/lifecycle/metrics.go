package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/shoal-dev/shoal/runtime"
)

// PodMetrics measures the running containers of every pod the driver holds, those of workers
// and those an earlier process left alike: they all use the node's CPU and memory.
func (m *Manager) PodMetrics(ctx context.Context) ([]runtime.PodMetrics, error) {
	ctrs, err := m.cfg.Driver.Containers(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("pod metrics: %w", err)
	}
	pods := map[string]*runtime.PodMetrics{}
	failed := map[string]bool{}
	var errs []error
	for _, c := range ctrs {
		if c.Status != ContainerRunning || failed[c.Meta.PodUID] {
			continue
		}
		u, err := m.cfg.Driver.ContainerUsage(ctx, c.ID)
		switch {
		case errors.Is(err, runtime.ErrNotFound), errors.Is(err, runtime.ErrNotRunning):
			continue // exited or removed since it was listed
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("pod metrics: %w", ctx.Err())
			}
			// Without one of its containers the pod's usage would look smaller than it is.
			failed[c.Meta.PodUID] = true
			errs = append(errs, fmt.Errorf("measure container %s of pod %s/%s: %w", c.Meta.Name, c.Meta.PodNamespace, c.Meta.PodName, err))
			continue
		}
		p := pods[c.Meta.PodUID]
		if p == nil {
			p = &runtime.PodMetrics{UID: c.Meta.PodUID, Namespace: c.Meta.PodNamespace, Name: c.Meta.PodName}
			pods[c.Meta.PodUID] = p
		}
		p.Containers = append(p.Containers, runtime.ContainerMetrics{Name: c.Meta.Name, ID: c.ID,
			CPUUsageNanos: u.CPUUsageNanos, MemoryWorkingSet: u.MemoryWorkingSet, Time: u.Time})
	}
	out := make([]runtime.PodMetrics, 0, len(pods))
	for uid, p := range pods {
		if failed[uid] {
			continue
		}
		slices.SortFunc(p.Containers, func(a, b runtime.ContainerMetrics) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b runtime.PodMetrics) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID))
	})
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("pod metrics: %w", err)
	}
	return out, nil
}
