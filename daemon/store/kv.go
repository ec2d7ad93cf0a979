package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KV is one decoded key-value pair.
type KV[T any] struct {
	Key   string
	Value T
	// ModRev is the revision of the key's last change.
	ModRev int64
}

// EventType says what an Event reports.
type EventType int

// Event types.
const (
	// EventPut: the key was created or changed; Value is the new value.
	EventPut EventType = iota + 1
	// EventDelete: the key was deleted (or its lease expired); Value is the last value.
	EventDelete
	// EventResync: the store compacted away revisions the watch had not yet seen, so some
	// changes are lost. List the prefix again; Rev is the revision the watch goes on from.
	EventResync
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventResync:
		return "resync"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by Watch.
type Event[T any] struct {
	Type  EventType
	Key   string
	Value T
	// Rev is the revision of the change.
	Rev int64
	// EndOfRev is set on the last event of its revision: every change of the write at Rev has
	// been delivered (a transaction's changes share one revision and arrive together).
	EndOfRev bool
	// Err is set when the stored value is not valid JSON for T; Value is then the zero value.
	Err error
}

// Get reads key and decodes its JSON value into a T. rev is the key's mod revision; found is
// false (and err nil) when the key does not exist.
func Get[T any](ctx context.Context, c *Client, key string) (v T, rev int64, found bool, err error) {
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return v, 0, false, fmt.Errorf("get %q from the store: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return v, 0, false, nil
	}
	kv := resp.Kvs[0]
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return v, kv.ModRevision, true, fmt.Errorf("decode %q from the store: %w", key, err)
	}
	return v, kv.ModRevision, true, nil
}

// List reads every key under prefix, sorted by key. rev is the store revision of the read:
// pass rev+1 to Watch to see every later change.
func List[T any](ctx context.Context, c *Client, prefix string) ([]KV[T], int64, error) {
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("list %q in the store: %w", prefix, err)
	}
	out := make([]KV[T], 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, 0, fmt.Errorf("decode %q from the store: %w", kv.Key, err)
		}
		out = append(out, KV[T]{Key: string(kv.Key), Value: v, ModRev: kv.ModRevision})
	}
	return out, resp.Header.Revision, nil
}

// Put writes v as JSON at key. opts are etcd's (clientv3.WithLease, ...).
func Put(ctx context.Context, c *Client, key string, v any, opts ...clientv3.OpOption) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q for the store: %w", key, err)
	}
	if _, err := c.cli.Put(ctx, key, string(b), opts...); err != nil {
		return fmt.Errorf("put %q in the store: %w", key, err)
	}
	return nil
}

// Delete deletes key. Deleting a missing key is not an error.
func Delete(ctx context.Context, c *Client, key string) error {
	if _, err := c.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %q from the store: %w", key, err)
	}
	return nil
}

// Watch reports changes under prefix from revision fromRev on (0: from now). It survives
// broken connections and restarts of the store by resuming after the last revision it
// delivered. When that revision has been compacted away it sends an EventResync and goes on
// from the oldest revision left; the caller lists the prefix again and can skip events whose
// Rev is not above the list's revision. The channel is closed when ctx ends or c is closed.
func Watch[T any](ctx context.Context, c *Client, prefix string, fromRev int64) <-chan Event[T] {
	ch := make(chan Event[T])
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	c.goOwned(func() {
		defer close(ch)
		defer cancel()
		defer stop()
		watchLoop(ctx, c, prefix, fromRev, ch)
	})
	return ch
}

func watchLoop[T any](ctx context.Context, c *Client, prefix string, next int64, ch chan<- Event[T]) {
	send := func(ev Event[T]) bool {
		select {
		case ch <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var bo backoff
	for ctx.Err() == nil {
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify()}
		if next > 0 {
			opts = append(opts, clientv3.WithRev(next))
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range c.cli.Watch(wctx, prefix, opts...) {
			if resp.CompactRevision != 0 {
				next = resp.CompactRevision
				send(Event[T]{Type: EventResync, Key: prefix, Rev: next})
				break
			}
			if resp.Err() != nil {
				break
			}
			if resp.Created && next == 0 {
				next = resp.Header.Revision + 1
			}
			c.requests.watchEvents.Add(int64(len(resp.Events)))
			for i, e := range resp.Events {
				ev := decodeEvent[T](e)
				ev.EndOfRev = i == len(resp.Events)-1 || resp.Events[i+1].Kv.ModRevision != e.Kv.ModRevision
				if !send(ev) {
					break
				}
				next = e.Kv.ModRevision + 1
			}
			bo.reset()
		}
		wcancel()
		if !bo.wait(ctx) {
			return
		}
	}
}

func decodeEvent[T any](e *clientv3.Event) Event[T] {
	ev := Event[T]{Key: string(e.Kv.Key), Rev: e.Kv.ModRevision}
	data := e.Kv.Value
	if e.Type == mvccpb.DELETE {
		ev.Type = EventDelete
		data = nil
		if e.PrevKv != nil {
			data = e.PrevKv.Value
		}
	} else {
		ev.Type = EventPut
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &ev.Value); err != nil {
			var zero T
			ev.Value = zero
			ev.Err = fmt.Errorf("decode %q from the store: %w", ev.Key, err)
		}
	}
	return ev
}

// backoff is a capped exponential delay between retries.
type backoff struct{ d time.Duration }

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

func (b *backoff) reset() { b.d = 0 }

// wait sleeps for the next delay; it returns false when ctx ends first.
func (b *backoff) wait(ctx context.Context) bool {
	if b.d == 0 {
		b.d = minBackoff
	} else {
		b.d = min(2*b.d, maxBackoff)
	}
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
