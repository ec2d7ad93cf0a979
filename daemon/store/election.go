package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var (
	// ErrNotLeader is returned by a fenced write when this candidate no longer leads. The
	// caller must stop acting as the leader (and may campaign again).
	ErrNotLeader = errors.New("not the leader any more: another candidate leads or the session expired")
	// ErrNoLeader is returned by Leader when no candidate leads.
	ErrNoLeader = errors.New("no leader elected")
)

// Leadership is won by Campaign and lasts until Done is closed. Every write the leader makes
// goes through Txn, which is fenced by the leader key's create revision: once another
// candidate has taken over, a leader that was paused or cut off cannot write, even before it
// notices. Its methods are safe for concurrent use.
type Leadership struct {
	// Key is the leader's election key, <prefix>/<lease id in hex>.
	Key string
	// Rev is the create revision of Key, the fencing token.
	Rev int64

	c        *Client
	session  *concurrency.Session
	election *concurrency.Election
	done     chan struct{}
	lostOnce sync.Once
	stop     context.CancelFunc
	stopped  chan struct{}
}

// Campaign blocks until candidate leads the election under prefix (for Shoal, /shoal/master),
// or ctx ends. The leadership lives on a session lease with the given TTL (DefaultTTL when
// 0): if the process stops or loses the store for longer than that, another candidate takes
// over.
func (c *Client) Campaign(ctx context.Context, prefix, candidate string, ttl time.Duration) (*Leadership, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	var bo backoff
	for {
		l, err := c.campaignOnce(ctx, prefix, candidate, ttl)
		if l != nil || err != nil {
			return l, err
		}
		// the session was lost while waiting: try again with a new one
		if !bo.wait(ctx) {
			return nil, fmt.Errorf("campaign for %s: %w", prefix, ctx.Err())
		}
	}
}

// campaignOnce returns (nil, nil) when the session was lost while campaigning.
func (c *Client) campaignOnce(ctx context.Context, prefix, candidate string, ttl time.Duration) (*Leadership, error) {
	sess, err := concurrency.NewSession(c.cli, concurrency.WithTTL(int(ttlSeconds(ttl))),
		concurrency.WithContext(c.ctx))
	if err != nil {
		return nil, fmt.Errorf("campaign for %s: create a session: %w", prefix, err)
	}
	// stop campaigning when the session is lost
	cctx, cancel := context.WithCancel(ctx)
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-sess.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	defer func() {
		cancel()
		<-watcherDone
	}()

	el := concurrency.NewElection(sess, prefix)
	if err := el.Campaign(cctx, candidate); err != nil {
		closeSession(sess)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("campaign for %s: %w", prefix, ctx.Err())
		}
		if c.ctx.Err() != nil {
			return nil, fmt.Errorf("campaign for %s: the store client is closed", prefix)
		}
		if isSessionDone(sess) {
			return nil, nil
		}
		return nil, fmt.Errorf("campaign for %s: %w", prefix, err)
	}
	// The session may have expired while we waited; make sure our key still stands.
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())).Commit()
	if err != nil {
		closeSession(sess)
		return nil, fmt.Errorf("campaign for %s: %w", prefix, err)
	}
	if !resp.Succeeded || isSessionDone(sess) {
		closeSession(sess)
		return nil, nil
	}

	lctx, stop := context.WithCancel(c.ctx)
	l := &Leadership{
		Key: el.Key(), Rev: el.Rev(),
		c: c, session: sess, election: el,
		done: make(chan struct{}), stop: stop, stopped: make(chan struct{}),
	}
	c.goOwned(func() {
		defer close(l.stopped)
		l.watch(lctx)
	})
	return l, nil
}

func isSessionDone(sess *concurrency.Session) bool {
	select {
	case <-sess.Done():
		return true
	default:
		return false
	}
}

func closeSession(sess *concurrency.Session) {
	if isSessionDone(sess) {
		return
	}
	_ = sess.Close() // revokes the lease, bounded by the session TTL
}

// watch closes l.done when the session is lost or the leader key is deleted or replaced.
func (l *Leadership) watch(ctx context.Context) {
	defer l.markLost()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		l.waitKeyGone(wctx)
	}()
	select {
	case <-l.session.Done():
	case <-gone:
	case <-ctx.Done():
	}
	cancel()
	<-gone
}

func (l *Leadership) waitKeyGone(ctx context.Context) {
	cli := l.c.cli
	next := l.Rev
	var bo backoff
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range cli.Watch(wctx, l.Key, clientv3.WithRev(next)) {
			if resp.CompactRevision != 0 || resp.Err() != nil {
				break
			}
			for _, e := range resp.Events {
				if e.Type == mvccpb.DELETE || e.Kv.CreateRevision != l.Rev {
					cancel()
					return
				}
				next = e.Kv.ModRevision + 1
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if resp, err := cli.Get(ctx, l.Key); err == nil {
			if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.Rev {
				return
			}
			next = resp.Header.Revision + 1
		}
		if !bo.wait(ctx) {
			return
		}
	}
}

func (l *Leadership) markLost() { l.lostOnce.Do(func() { close(l.done) }) }

// Done is closed when the leadership is over: the session was lost, the key was deleted,
// a fenced write failed, Resign was called or the client closed. A leader whose process was
// paused may find Done closed late; Txn protects the store in the meantime.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Txn commits ops only if this candidate still leads: the leader key still exists with
// create revision Rev. Otherwise it returns ErrNotLeader and ends the leadership.
func (l *Leadership) Txn(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	select {
	case <-l.done:
		return nil, ErrNotLeader
	default:
	}
	resp, err := l.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.Key), "=", l.Rev)).
		Then(ops...).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("fenced write as leader %s: %w", l.Key, err)
	}
	if !resp.Succeeded {
		l.markLost()
		return resp, ErrNotLeader
	}
	return resp, nil
}

// Resign gives up the leadership: the leader key is deleted, so another candidate can lead
// at once, and the session lease is revoked.
func (l *Leadership) Resign(ctx context.Context) error {
	l.markLost()
	l.stop()
	<-l.stopped
	var err error
	if !isSessionDone(l.session) {
		err = l.election.Resign(ctx)
	}
	closeSession(l.session)
	if err != nil {
		return fmt.Errorf("resign %s: %w; the leadership ends when its lease expires", l.Key, err)
	}
	return nil
}

// Leader returns the candidate leading the election under prefix, or ErrNoLeader.
func (c *Client) Leader(ctx context.Context, prefix string) (string, error) {
	cand, _, err := c.leader(ctx, prefix)
	if err != nil {
		return "", err
	}
	if cand == "" {
		return "", ErrNoLeader
	}
	return cand, nil
}

// leader returns the leading candidate ("" when none) and the revision of the read.
func (c *Client) leader(ctx context.Context, prefix string) (string, int64, error) {
	pfx := strings.TrimSuffix(prefix, "/") + "/"
	resp, err := c.cli.Get(ctx, pfx, clientv3.WithFirstCreate()...)
	if err != nil {
		return "", 0, fmt.Errorf("read the leader of %s: %w", prefix, err)
	}
	if len(resp.Kvs) == 0 {
		return "", resp.Header.Revision, nil
	}
	return string(resp.Kvs[0].Value), resp.Header.Revision, nil
}

// ObserveLeader sends the leading candidate under prefix each time it changes, starting with
// the current one; "" means no candidate leads. The channel is closed when ctx ends or c is
// closed. A slow reader only misses intermediate leaders, never the latest one.
func (c *Client) ObserveLeader(ctx context.Context, prefix string) <-chan string {
	ch := make(chan string)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	c.goOwned(func() {
		defer close(ch)
		defer cancel()
		defer stop()
		c.observeLeader(ctx, prefix, ch)
	})
	return ch
}

func (c *Client) observeLeader(ctx context.Context, prefix string, ch chan<- string) {
	pfx := strings.TrimSuffix(prefix, "/") + "/"
	var bo backoff
	sent := false
	last := ""
	for ctx.Err() == nil {
		cur, rev, err := c.leader(ctx, prefix)
		if err != nil {
			if !bo.wait(ctx) {
				return
			}
			continue
		}
		bo.reset()
		if !sent || cur != last {
			select {
			case ch <- cur:
			case <-ctx.Done():
				return
			}
			sent, last = true, cur
		}
		// wait for any change under the prefix, then read the leader again
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		changed := false
		for resp := range c.cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if resp.Err() != nil || resp.CompactRevision != 0 || len(resp.Events) > 0 {
				changed = len(resp.Events) > 0
				break
			}
		}
		wcancel()
		if !changed && !bo.wait(ctx) {
			return
		}
	}
}
