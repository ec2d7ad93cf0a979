package image

import (
	"context"
	"sync"
)

// flightGroup runs one piece of work per key at a time and lets every caller
// that asks for the same key while it runs wait for the same result.
//
// Unlike a plain singleflight group, the work runs under its own context that
// is cancelled only when every waiter has given up, so one caller's
// cancellation does not fail the others, and the work stops once nobody
// wants its result. The work goroutines are tracked by wg so the owner can
// wait for them on shutdown.
type flightGroup[T any] struct {
	mu    sync.Mutex
	calls map[string]*flightCall[T]
	wg    *sync.WaitGroup
	base  context.Context
}

type flightCall[T any] struct {
	done    chan struct{}
	waiters int
	cancel  context.CancelFunc
	val     T
	err     error
}

func newFlightGroup[T any](base context.Context, wg *sync.WaitGroup) *flightGroup[T] {
	return &flightGroup[T]{calls: make(map[string]*flightCall[T]), wg: wg, base: base}
}

// do runs fn for key unless a run for key is already in progress, and waits
// for the result or for ctx to end. shared reports whether the result came
// from a run another caller started.
func (g *flightGroup[T]) do(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) (val T, shared bool, err error) {
	g.mu.Lock()
	c, ok := g.calls[key]
	if ok {
		c.waiters++
		shared = true
	} else {
		workCtx, cancel := context.WithCancel(g.base)
		c = &flightCall[T]{done: make(chan struct{}), waiters: 1, cancel: cancel}
		g.calls[key] = c
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer cancel()
			v, err := fn(workCtx)
			g.mu.Lock()
			c.val, c.err = v, err
			if g.calls[key] == c {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			close(c.done)
		}()
	}
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, shared, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			// Nobody wants the result any more: stop the work and let the
			// next caller start afresh.
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		var zero T
		return zero, shared, ctx.Err()
	}
}
