package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// minStopGrace is the shortest window between SIGTERM and SIGKILL of a graceful stop, however
// much of the grace period the preStop hook and the wait for its turn took: the kubelet's
// minimumGracePeriodInSeconds.
const minStopGrace = 2 * time.Second

// hookOutputMax bounds the output of an exec hook kept for its failure message.
const hookOutputMax = 1024

// Lifecycle hook names, as the messages of their failures name them.
const (
	postStartHook = "PostStart"
	preStopHook   = "PreStop"
)

// runHook runs one lifecycle handler for the container id, as the kubelet's handler runner
// does: exec runs the command in the container (exit status 0 is success), httpGet sends a
// GET from inside the pod's network namespace (any response is success), sleep waits its
// seconds or until ctx ends. tcpSocket is refused when it runs, as Kubernetes refuses it.
func (m *Manager) runHook(ctx context.Context, sb Sandbox, id string, meta ContainerMeta, hook string, h *manifests.LifecycleHandler) error {
	if err := m.handle(ctx, sb, id, meta, h); err != nil {
		return fmt.Errorf("%s hook of container %q in pod %s/%s failed: %w", hook, meta.Name, meta.PodNamespace, meta.PodName, err)
	}
	return nil
}

func (m *Manager) handle(ctx context.Context, sb Sandbox, id string, meta ContainerMeta, h *manifests.LifecycleHandler) error {
	d := m.cfg.Driver
	switch {
	case h == nil:
		return errors.New("the hook has no handler")
	case h.Exec != nil:
		out := &limitedBuffer{max: hookOutputMax}
		code, err := d.Exec(ctx, id, runtime.ExecOptions{Command: h.Exec.Command, Stdout: out, Stderr: out})
		switch {
		case err != nil:
			return fmt.Errorf("exec %q: %w", h.Exec.Command, err)
		case code != 0:
			return fmt.Errorf("exec %q exited with %d, output: %q", h.Exec.Command, code, out.String())
		}
		return nil
	case h.HTTPGet != nil:
		g := h.HTTPGet
		port, err := resolvePort(meta.Name, meta.Ports, g.Port)
		if err != nil {
			return fmt.Errorf("httpGet: %w", err)
		}
		hp := HTTPProbe{Scheme: string(g.Scheme), Host: g.Host, Port: port, Path: g.Path, Headers: map[string]string{}, AnyStatus: true}
		for _, hd := range g.HTTPHeaders {
			hp.Headers[hd.Name] = hd.Value
		}
		if err := d.ProbeHTTP(ctx, sb, hp); err != nil {
			return fmt.Errorf("httpGet %s port %d: %w", hookPath(g.Path), port, err)
		}
		return nil
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("sleep %ds: stopped before the sleep was over", h.Sleep.Seconds)
		case <-t.C:
			return nil
		}
	case h.TCPSocket != nil:
		return errors.New("tcpSocket is not supported as a lifecycle hook (Kubernetes fails it too): use exec, httpGet or sleep")
	}
	return errors.New("the hook has no handler")
}

func hookPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// limitedBuffer keeps the first max bytes written to it, from any number of goroutines.
type limitedBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(string(l.b))
}

// stopTarget is a running container to stop.
type stopTarget struct {
	info ContainerInfo // its ID and meta: its preStop hook and ports
	// order is, for a sidecar, its position among the pod's init containers (-1: unknown).
	order int
}

// stopResult is how a stop ended.
type stopResult struct {
	info    ContainerInfo // the final state (zero if err)
	err     error         // the stop failed
	preStop error         // the preStop hook failed (the container was stopped all the same)
}

// terminate stops running containers of one pod as the kubelet's killContainer does, all at
// once: each container's preStop hook first (when grace > 0), bounded by grace; then sidecars
// wait for their turn, until every other container and every sidecar declared after them has
// exited (Kubernetes 1.29's order), bounded by what is left of grace; then SIGTERM and SIGKILL
// after what is left of grace, never less than minStopGrace. A grace of 0 skips preStop hooks
// and kills at once. It returns one result per target, in order.
func (m *Manager) terminate(ctx context.Context, sb Sandbox, targets []stopTarget, grace time.Duration) []stopResult {
	results := make([]stopResult, len(targets))
	stopped := make([]chan struct{}, len(targets))
	for i := range targets {
		stopped[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for i, t := range targets {
		var prereqs []chan struct{}
		if t.info.Meta.Sidecar {
			for j, o := range targets {
				if j != i && (!o.info.Meta.Sidecar || (t.order >= 0 && o.order > t.order)) {
					prereqs = append(prereqs, stopped[j])
				}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(stopped[i])
			results[i] = m.stopOne(ctx, sb, t.info, grace, prereqs)
		}()
	}
	wg.Wait()
	return results
}

// stopOne stops one container: preStop, wait for prereqs, SIGTERM, SIGKILL (see terminate).
func (m *Manager) stopOne(ctx context.Context, sb Sandbox, c ContainerInfo, grace time.Duration, prereqs []chan struct{}) stopResult {
	var res stopResult
	start := time.Now()
	if h := c.Meta.PreStop; h != nil && grace > 0 {
		hctx, cancel := context.WithTimeout(ctx, grace)
		res.preStop = m.runHook(hctx, sb, c.ID, c.Meta, preStopHook, h)
		cancel()
		if res.preStop != nil {
			m.log.Warn("preStop hook failed", "pod", c.Meta.PodNamespace+"/"+c.Meta.PodName, "container", c.Meta.Name, "err", res.preStop)
		}
	}
	if len(prereqs) > 0 && grace > 0 {
		if left := grace - time.Since(start); left > 0 {
			waitAll(ctx, prereqs, left)
		}
	}
	left := time.Duration(0)
	if grace > 0 {
		left = max(grace-time.Since(start), minStopGrace)
	}
	res.info, res.err = m.cfg.Driver.StopContainer(ctx, c.ID, left)
	if res.err != nil {
		res.err = fmt.Errorf("stop container %s: %w", c.Meta.Name, res.err)
	}
	return res
}

// waitAll waits until every channel is closed, d has passed or ctx ended.
func waitAll(ctx context.Context, chs []chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for _, ch := range chs {
		select {
		case <-ch:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// withNote puts a note (such as a failed hook) before a container's termination message.
func withNote(note, msg string) string {
	switch {
	case note == "":
		return msg
	case msg == "":
		return note
	}
	return note + ": " + msg
}
