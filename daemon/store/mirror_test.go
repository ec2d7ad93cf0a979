package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// mirrorMatches checks that the table holds exactly what the store holds under its prefix.
func mirrorMatches[T comparable](t *testing.T, ctx context.Context, c *Client, tab *Table[T]) {
	t.Helper()
	want, _, err := List[T](ctx, c, tab.pfx)
	if err != nil {
		t.Fatal(err)
	}
	got := tab.List()
	if len(got) != len(want) {
		t.Fatalf("mirror has %d keys under %s, the store %d", len(got), tab.pfx, len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key || got[i].Value != want[i].Value || got[i].ModRev != want[i].ModRev {
			t.Fatalf("mirror has %+v, the store %+v", got[i], want[i])
		}
	}
}

func TestMirrorFollowsChangesAndReadsItsOwnWrites(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := connect(t, startStore(t, storeDir(t)))
	for i := range 3 {
		if err := Put(ctx, c, fmt.Sprintf("/m/a/%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := Put(ctx, c, "/m/b/x", "before"); err != nil {
		t.Fatal(err)
	}
	m := NewMirror(c, "/m/")
	var mu sync.Mutex
	changes := map[string]int{}
	a := Track(m, "/m/a/", func(key string, old, new *int) {
		mu.Lock()
		changes[key]++
		mu.Unlock()
	})
	b := Track[string](m, "/m/b/", nil)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := m.Start(mctx); err != nil {
		t.Fatal(err)
	}
	if a.Len() != 3 || b.Len() != 1 {
		t.Fatalf("first read: %d and %d keys, want 3 and 1", a.Len(), b.Len())
	}
	// Writers under both prefixes and outside them; after the last write's revision the
	// mirror must hold exactly what the store holds, each change applied once.
	var wg sync.WaitGroup
	const writers, writes = 4, 50
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				key := fmt.Sprintf("/m/a/%d", (w*writes+i)%7)
				if err := Put(ctx, c, key, i); err != nil {
					t.Error(err)
				}
				if err := Put(ctx, c, "/m/other", i); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := c.Etcd().Delete(ctx, "/m/a/0"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Etcd().Txn(ctx).Then(clientv3.OpPut("/m/b/x", `"after"`), clientv3.OpPut("/m/b/y", `"new"`), clientv3.OpPut("/m/a/1", "99")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WaitFor(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	mirrorMatches(t, ctx, c, a)
	mirrorMatches(t, ctx, c, b)
	total := 0
	for _, n := range changes {
		total += n
	}
	if want := writers*writes + 2; total != want { // every put, the delete and the txn's put
		t.Errorf("%d changes reported, want %d", total, want)
	}
	if kv, ok := b.Get("/m/b/x"); !ok || kv.Value != "after" {
		t.Errorf("/m/b/x = %+v, want the txn's value", kv)
	}
	cancel()
	if err := m.WaitFor(ctx, resp.Header.Revision+1000); err != ErrMirrorStopped {
		t.Errorf("WaitFor after the end = %v, want ErrMirrorStopped", err)
	}
}

// A watch that is behind a compaction reads everything again and skips what it replays.
func TestMirrorRereadsAfterCompaction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := connect(t, startStore(t, storeDir(t)))
	for i := range 5 {
		if err := Put(ctx, c, fmt.Sprintf("/m/k/%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	m := NewMirror(c, "/m/")
	var mu sync.Mutex
	var changes []string
	tab := Track(m, "/m/k/", func(key string, old, new *int) {
		mu.Lock()
		changes = append(changes, key)
		mu.Unlock()
	})
	m.started = true
	old, err := m.read(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Changes the mirror has not seen, then a compaction past them.
	if err := Delete(ctx, c, "/m/k/0"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 8; i++ {
		if err := Put(ctx, c, fmt.Sprintf("/m/k/%d", i), 10*i); err != nil {
			t.Fatal(err)
		}
	}
	_, cur, err := List[int](ctx, c, "/m/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Etcd().Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.watchFrom(mctx, old+1)
	if err := Put(ctx, c, "/m/k/9", 9); err != nil {
		t.Fatal(err)
	}
	_, last, _, err := Get[int](ctx, c, "/m/k/9")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	mirrorMatches(t, ctx, c, tab)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(changes)
	want := []string{"/m/k/0", "/m/k/1", "/m/k/2", "/m/k/3", "/m/k/4", "/m/k/5", "/m/k/6", "/m/k/7", "/m/k/9"}
	if !slices.Equal(changes, want) {
		t.Errorf("changes reported %q, want each changed key once: %q", changes, want)
	}
}

// A transaction's changes share one revision: the mirror counts the revision applied only once
// the last of them is, so that WaitFor(rev) after a transaction sees every key it wrote.
func TestMirrorAppliesARevisionWhole(t *testing.T) {
	m := NewMirror(nil, "/m/")
	tab := Track[int](m, "/m/", nil)
	events := make(chan Event[json.RawMessage])
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.follow(context.Background(), events)
	}()
	events <- Event[json.RawMessage]{Type: EventPut, Key: "/m/a", Value: json.RawMessage("1"), Rev: 5}
	events <- Event[json.RawMessage]{Type: EventPut, Key: "/m/b", Value: json.RawMessage("2"), Rev: 6}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.WaitFor(ctx, 5); err != nil { // the first change of revision 6 is being applied
		t.Fatal(err)
	}
	if got := m.Rev(); got != 5 {
		t.Errorf("after the first change of revision 6: mirror at %d, want 5", got)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if err := m.WaitFor(short, 6); err == nil {
		t.Errorf("WaitFor(6) returned before the last change of revision 6 was applied")
	}
	events <- Event[json.RawMessage]{Type: EventPut, Key: "/m/c", Value: json.RawMessage("3"), Rev: 6, EndOfRev: true}
	close(events)
	<-done
	if got := m.Rev(); got != 6 || tab.Len() != 3 {
		t.Errorf("after revision 6: mirror at %d with %d keys, want 6 and 3", got, tab.Len())
	}
}
