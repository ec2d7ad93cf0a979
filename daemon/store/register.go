package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultTTL is the lease TTL of registrations and election sessions when none is given.
const DefaultTTL = 5 * time.Second

// Registration keeps a key alive on a lease: while the process runs and reaches the store,
// the key exists; when it stops or loses the store for longer than the TTL, the key goes away.
// Its methods are safe for concurrent use.
type Registration struct {
	c    *Client
	key  string
	ttl  int64
	stop context.CancelFunc
	done chan struct{}

	mu    sync.Mutex
	value string
	lease clientv3.LeaseID // 0 while there is none

	closeOnce sync.Once
	closeErr  error
}

// Register puts value (as JSON) at key on a lease of the given TTL (DefaultTTL when 0;
// etcd rounds it up to whole seconds and to at least its minimum, about 2 s) and keeps the
// lease alive. If the lease is lost because the store was unreachable for longer than the TTL,
// it creates a new lease and puts the key again once the store is back. Close revokes it.
func (c *Client) Register(ctx context.Context, key string, value any, ttl time.Duration) (*Registration, error) {
	b, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("register %q: encode: %w", key, err)
	}
	r := &Registration{c: c, key: key, ttl: ttlSeconds(ttl), value: string(b), done: make(chan struct{})}
	lease, err := r.establish(ctx)
	if err != nil {
		return nil, fmt.Errorf("register %q: %w", key, err)
	}
	rctx, cancel := context.WithCancel(c.ctx)
	r.stop = cancel
	c.goOwned(func() {
		defer close(r.done)
		r.run(rctx, lease)
	})
	return r, nil
}

func ttlSeconds(ttl time.Duration) int64 {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return max(1, int64(math.Ceil(ttl.Seconds())))
}

// establish grants a lease and puts the current value on it.
func (r *Registration) establish(ctx context.Context) (clientv3.LeaseID, error) {
	g, err := r.c.cli.Grant(ctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("grant a lease: %w", err)
	}
	r.mu.Lock()
	v := r.value
	r.mu.Unlock()
	for {
		if _, err := r.c.cli.Put(ctx, r.key, v, clientv3.WithLease(g.ID)); err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
			_, _ = r.c.cli.Revoke(rctx, g.ID)
			cancel()
			return 0, fmt.Errorf("put: %w", err)
		}
		r.mu.Lock()
		if r.value == v { // no Update raced with the put
			r.lease = g.ID
			r.mu.Unlock()
			return g.ID, nil
		}
		v = r.value
		r.mu.Unlock()
	}
}

func (r *Registration) run(ctx context.Context, lease clientv3.LeaseID) {
	var bo backoff
	for {
		ka, err := r.c.cli.KeepAlive(ctx, lease)
		if err == nil {
			for range ka { // closes when the lease is lost or ctx ends
			}
		}
		if ctx.Err() != nil {
			return // Close revokes the lease
		}
		r.mu.Lock()
		r.lease = 0
		r.mu.Unlock()
		for {
			if ctx.Err() != nil || !bo.wait(ctx) {
				return
			}
			actx, cancel := context.WithTimeout(ctx, time.Duration(r.ttl)*time.Second)
			lease, err = r.establish(actx)
			cancel()
			if err == nil {
				bo.reset()
				break
			}
		}
	}
}

// Key returns the registered key.
func (r *Registration) Key() string { return r.key }

// Lease returns the current lease, 0 while it is being re-created. Other keys can be put on
// it to share the registration's lifetime (until the lease is re-created).
func (r *Registration) Lease() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// Update rewrites the value on the same lease. While the lease is being re-created the new
// value is kept and written with the new lease.
func (r *Registration) Update(ctx context.Context, value any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("update %q: encode: %w", r.key, err)
	}
	r.mu.Lock()
	r.value = string(b)
	lease := r.lease
	r.mu.Unlock()
	if lease == 0 {
		return nil
	}
	_, err = r.c.cli.Put(ctx, r.key, string(b), clientv3.WithLease(lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil // lost just now; the value is written when the lease is re-created
	}
	if err != nil {
		return fmt.Errorf("update %q in the store: %w", r.key, err)
	}
	return nil
}

// Close stops the keep-alives and revokes the lease, deleting the key. It waits at most a
// few seconds for the store; if it cannot be reached the key expires with the lease.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
		r.mu.Lock()
		lease := r.lease
		r.lease = 0
		r.mu.Unlock()
		if lease == 0 || r.c.ctx.Err() != nil {
			return // nothing to revoke, or the client is closed: the lease expires
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if _, err := r.c.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.closeErr = fmt.Errorf("revoke the lease of %q: %w; the key expires after its TTL", r.key, err)
		}
	})
	return r.closeErr
}
