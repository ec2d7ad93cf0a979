package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/daemon/internal/sorted"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Mirror keeps prefixes of the store in memory, as Kubernetes' informers keep a cache of the
// API: each prefix is read once, all at one revision, and then kept current by a single watch
// over a root that holds them all, from the revision after that read. One watch over the root
// delivers every change under it in revision order, so after a write at revision W the mirror
// reflects it, and every earlier change to any of its prefixes, as soon as WaitFor(W) returns:
// a reader sees its own writes without listing the store again.
//
// A watch that breaks resumes after the last revision it delivered, so no change is missed or
// seen twice. When the store has compacted away revisions the watch had not seen yet, the
// mirror reads every prefix again at the current revision and ignores the changes at or below
// it that the resumed watch replays.
//
// Tables are added with Track before Start. Reads are safe from any goroutine.
type Mirror struct {
	c    *Client
	root string

	mu      sync.Mutex
	tables  []table
	rev     int64         // every change up to rev is applied
	floor   int64         // the revision of the last read; changes at or below it are in it
	revCh   chan struct{} // closed and replaced whenever rev moves
	started bool
	err     error // why the mirror stopped, once it has
}

// table is one tracked prefix.
type table interface {
	prefix() string
	// reset replaces the table's content with a read of its prefix; after the first read it
	// reports the keys the read found changed.
	reset(kvs []KV[json.RawMessage], first bool)
	// apply applies one change of a key under the prefix.
	apply(ev Event[json.RawMessage])
}

// NewMirror returns a mirror of prefixes under root (such as "/shoal/").
func NewMirror(c *Client, root string) *Mirror {
	return &Mirror{c: c, root: root, revCh: make(chan struct{})}
}

// Table is one prefix of a Mirror, decoded as T.
type Table[T any] struct {
	m      *Mirror
	pfx    string
	items  sorted.Map[KV[T]]
	change func(key string, old, new *T)
	// initial reports the keys of the first read to change too (TrackAll).
	initial bool
}

// TrackAll is Track whose change is also called for every key of the first read (as a new key),
// for a caller that builds its own index of the table from the changes alone.
func TrackAll[T any](m *Mirror, prefix string, change func(key string, old, new *T)) *Table[T] {
	t := Track(m, prefix, change)
	t.initial = true
	return t
}

// Track adds the keys under prefix (which must be under the mirror's root) as a table of T.
// change, when not nil, is called for every change after the first read, with the mirror's lock
// held (so it must not read the mirror): old is nil for a new key, new is nil for a deleted one.
// After a compaction the changes the new read finds are reported, each key once. A value that is not valid JSON for T is left out, as if it were deleted.
func Track[T any](m *Mirror, prefix string, change func(key string, old, new *T)) *Table[T] {
	if !strings.HasPrefix(prefix, m.root) {
		panic(fmt.Sprintf("store: Track(%q) outside the mirror's root %q", prefix, m.root))
	}
	t := &Table[T]{m: m, pfx: prefix, change: change}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		panic("store: Track after Start")
	}
	m.tables = append(m.tables, t)
	return t
}

func (t *Table[T]) prefix() string { return t.pfx }

func (t *Table[T]) reset(kvs []KV[json.RawMessage], first bool) {
	var old map[string]KV[T]
	if !first && t.change != nil {
		old = maps.Collect(t.items.All())
	}
	t.items.Reset(func(yield func(string, KV[T]) bool) {
		for _, kv := range kvs {
			var v T
			if json.Unmarshal(kv.Value, &v) != nil {
				continue
			}
			if !yield(kv.Key, KV[T]{Key: kv.Key, Value: v, ModRev: kv.ModRev}) {
				return
			}
		}
	})
	if (first && !t.initial) || t.change == nil {
		return
	}
	for _, key := range slices.Sorted(maps.Keys(old)) {
		o := old[key]
		n, ok := t.items.Get(key)
		switch {
		case !ok:
			t.change(key, &o.Value, nil)
		case n.ModRev != o.ModRev:
			t.change(key, &o.Value, &n.Value)
		}
	}
	for key, n := range t.items.All() {
		if _, ok := old[key]; !ok {
			t.change(key, nil, &n.Value)
		}
	}
}

func (t *Table[T]) apply(ev Event[json.RawMessage]) {
	old, had := t.items.Get(ev.Key)
	var oldp, newp *T
	if had {
		oldp = &old.Value
	}
	var v T
	if ev.Type == EventPut && json.Unmarshal(ev.Value, &v) == nil {
		t.items.Set(ev.Key, KV[T]{Key: ev.Key, Value: v, ModRev: ev.Rev})
		newp = &v
	} else {
		if !had {
			return
		}
		t.items.Delete(ev.Key)
	}
	if t.change != nil {
		t.change(ev.Key, oldp, newp)
	}
}

// List returns the table's entries sorted by key. The table keeps them sorted as the changes
// come (package sorted), so a List costs a copy, not a sort.
func (t *Table[T]) List() []KV[T] {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	out := make([]KV[T], 0, t.items.Len())
	for _, kv := range t.items.All() {
		out = append(out, kv)
	}
	return out
}

// Get returns the entry of key.
func (t *Table[T]) Get(key string) (KV[T], bool) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	return t.items.Get(key)
}

// Len is the number of entries.
func (t *Table[T]) Len() int {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	return t.items.Len()
}

// ErrMirrorStopped is returned by WaitFor once the mirror's context has ended.
var ErrMirrorStopped = errors.New("the store mirror has stopped")

// Start reads every table and starts the watch, which runs until ctx ends. It returns once the
// tables hold the first read, or the error of that read; after an error it may be called again.
func (m *Mirror) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("store: mirror started twice")
	}
	m.started = true
	m.mu.Unlock()
	rev, err := m.read(ctx, 0)
	if err != nil {
		m.mu.Lock()
		m.started = false // the caller may try again
		m.mu.Unlock()
		return err
	}
	m.watchFrom(ctx, rev+1)
	return nil
}

// watchFrom starts the watch that keeps the tables current from revision from on.
func (m *Mirror) watchFrom(ctx context.Context, from int64) {
	events := Watch[json.RawMessage](ctx, m.c, m.root, from)
	m.c.goOwned(func() { m.follow(ctx, events) })
}

// read reads every table at one revision (the current one when rev is 0) and makes it the
// mirror's content. It returns the revision read.
func (m *Mirror) read(ctx context.Context, rev int64) (int64, error) {
	m.mu.Lock()
	tables := slices.Clone(m.tables)
	m.mu.Unlock()
	reads := make([][]KV[json.RawMessage], len(tables))
	for i, t := range tables {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := m.c.cli.Get(ctx, t.prefix(), opts...)
		if err != nil {
			return 0, fmt.Errorf("read %q into the store mirror: %w", t.prefix(), err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		kvs := make([]KV[json.RawMessage], len(resp.Kvs))
		for j, kv := range resp.Kvs {
			kvs[j] = KV[json.RawMessage]{Key: string(kv.Key), Value: kv.Value, ModRev: kv.ModRevision}
		}
		reads[i] = kvs
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	first := m.floor == 0
	for i, t := range tables {
		t.reset(reads[i], first)
	}
	m.floor = rev
	m.advance(rev)
	return rev, nil
}

// follow applies the watch's events until the watch ends.
func (m *Mirror) follow(ctx context.Context, events <-chan Event[json.RawMessage]) {
	defer func() {
		m.mu.Lock()
		m.err = ErrMirrorStopped
		close(m.revCh)
		m.revCh = nil
		m.mu.Unlock()
	}()
	for ev := range events {
		if ev.Type == EventResync {
			// Revisions the watch had not seen are gone: read everything again, at the current
			// revision, and skip what the watch replays below it.
			var bo backoff
			for {
				if _, err := m.read(ctx, 0); err == nil || ctx.Err() != nil {
					break
				}
				if !bo.wait(ctx) {
					return
				}
			}
			continue
		}
		m.mu.Lock()
		if ev.Rev > m.floor {
			for _, t := range m.tables {
				if strings.HasPrefix(ev.Key, t.prefix()) {
					t.apply(ev)
				}
			}
			// A revision is applied once all of its changes are: WaitFor(rev) after a
			// transaction must see every key it wrote.
			if ev.EndOfRev {
				m.advance(ev.Rev)
			} else {
				m.advance(ev.Rev - 1)
			}
		}
		m.mu.Unlock()
	}
}

// advance moves the applied revision forward and wakes WaitFor; m.mu is held.
func (m *Mirror) advance(rev int64) {
	if rev <= m.rev {
		return
	}
	m.rev = rev
	if m.revCh != nil {
		close(m.revCh)
		m.revCh = make(chan struct{})
	}
}

// Rev is the revision up to which every change under the root is applied.
func (m *Mirror) Rev() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// WaitFor waits until the mirror has applied every change up to rev, which must be the revision
// of a change under the mirror's root (such as the header revision of a write there).
func (m *Mirror) WaitFor(ctx context.Context, rev int64) error {
	for {
		m.mu.Lock()
		if m.rev >= rev {
			m.mu.Unlock()
			return nil
		}
		if m.err != nil {
			err := m.err
			m.mu.Unlock()
			return err
		}
		ch := m.revCh
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for the store mirror to reach revision %d: %w", rev, ctx.Err())
		}
	}
}
