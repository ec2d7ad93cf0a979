package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// testTTL is the lease TTL of the tests: etcd's minimum with 100 ms heartbeats and 1 s
// election timeout is 1.5 s, rounded up to whole seconds.
const testTTL = 2 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startStore starts an embedded member in dir and stops it when the test ends.
func startStore(t *testing.T, dir string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(testCtx(t), EmbedConfig{Dir: dir, Name: "shoal-test"})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func connect(t *testing.T, e *Embedded) *Client {
	t.Helper()
	c, err := Connect(testCtx(t), Config{Endpoints: e.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// storeDir returns a short directory for a store: unix socket paths are limited to 108 bytes.
func storeDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "store")
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	ctx := testCtx(t)
	e := startStore(t, dir)
	if got, want := e.Endpoints(), []string{"unix://" + filepath.Join(dir, SocketName)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Endpoints() = %v, want %v", got, want)
	}
	c := connect(t, e)
	if err := Put(ctx, c, "/shoal/test/a", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil { // idempotent
		t.Fatal(err)
	}

	e2 := startStore(t, dir)
	c2 := connect(t, e2)
	v, rev, found, err := Get[map[string]int](ctx, c2, "/shoal/test/a")
	if err != nil || !found || v["n"] != 1 || rev == 0 {
		t.Fatalf("after restart Get = %v, %d, %v, %v; want map[n:1], >0, true, nil", v, rev, found, err)
	}
}

func TestTwoEmbeddedDoNotCollide(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := connect(t, startStore(t, storeDir(t)))
	b := connect(t, startStore(t, storeDir(t)))
	if err := Put(ctx, a, "/k", "a"); err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, b, "/k", "b"); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		c    *Client
		want string
	}{"a": {a, "a"}, "b": {b, "b"}} {
		got, _, _, err := Get[string](ctx, tc.c, "/k")
		if err != nil || got != tc.want {
			t.Errorf("store %s: Get = %q, %v; want %q", name, got, err, tc.want)
		}
	}
}

func TestSameDirTwiceIsAnError(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	startStore(t, dir)
	_, err := StartEmbedded(testCtx(t), EmbedConfig{Dir: dir})
	if err == nil {
		t.Fatal("a second member on the same directory started")
	}
	t.Log(err)
}

type nodeInfo struct {
	Name   string            `json:"name"`
	CPU    int64             `json:"cpu"`
	Labels map[string]string `json:"labels,omitempty"`
}

func TestJSONHelpers(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := connect(t, startStore(t, storeDir(t)))

	want := []nodeInfo{
		{Name: "b", CPU: 2000, Labels: map[string]string{"zone": "x"}},
		{Name: "a", CPU: 1000},
		{Name: "c"},
	}
	for _, n := range want {
		if err := Put(ctx, c, "/shoal/nodes/"+n.Name, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := Put(ctx, c, "/shoal/nodesX", "outside the prefix"); err != nil {
		t.Fatal(err)
	}

	t.Run("get", func(t *testing.T) {
		for _, n := range want {
			got, rev, found, err := Get[nodeInfo](ctx, c, "/shoal/nodes/"+n.Name)
			if err != nil || !found || rev == 0 || fmt.Sprint(got) != fmt.Sprint(n) {
				t.Errorf("Get(%s) = %+v, %d, %v, %v", n.Name, got, rev, found, err)
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, _, found, err := Get[nodeInfo](ctx, c, "/shoal/nodes/none")
		if err != nil || found {
			t.Fatalf("Get(missing) found=%v err=%v", found, err)
		}
	})
	t.Run("list sorted by key", func(t *testing.T) {
		kvs, rev, err := List[nodeInfo](ctx, c, "/shoal/nodes/")
		if err != nil || rev == 0 {
			t.Fatalf("List: %v rev %d", err, rev)
		}
		var names []string
		for _, kv := range kvs {
			names = append(names, kv.Value.Name)
		}
		if fmt.Sprint(names) != "[a b c]" {
			t.Fatalf("List names = %v", names)
		}
	})
	t.Run("wrong type", func(t *testing.T) {
		if _, _, _, err := Get[int](ctx, c, "/shoal/nodes/a"); err == nil {
			t.Fatal("decoding an object into int did not fail")
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := Delete(ctx, c, "/shoal/nodes/a"); err != nil {
			t.Fatal(err)
		}
		if err := Delete(ctx, c, "/shoal/nodes/a"); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
		if _, _, found, _ := Get[nodeInfo](ctx, c, "/shoal/nodes/a"); found {
			t.Fatal("deleted key still there")
		}
	})
	t.Run("unencodable", func(t *testing.T) {
		if err := Put(ctx, c, "/x", func() {}); err == nil {
			t.Fatal("Put of a func did not fail")
		}
	})
}

// next reads one event or fails after a generous deadline.
func next[T any](t *testing.T, ch <-chan Event[T]) Event[T] {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no watch event")
	}
	panic("unreachable")
}

func TestWatch(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := connect(t, startStore(t, storeDir(t)))

	if err := Put(ctx, c, "/w/before", 0); err != nil {
		t.Fatal(err)
	}
	_, rev, err := List[int](ctx, c, "/w/")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	ch := Watch[int](wctx, c, "/w/", rev+1)
	if err := Put(ctx, c, "/w/a", 1); err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, c, "/other", 9); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ctx, c, "/w/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Etcd().Put(ctx, "/w/bad", "not json"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ   EventType
		key   string
		value int
		bad   bool
	}{
		{EventPut, "/w/a", 1, false},
		{EventDelete, "/w/a", 1, false},
		{EventPut, "/w/bad", 0, true},
	} {
		ev := next(t, ch)
		if ev.Type != want.typ || ev.Key != want.key || ev.Value != want.value || (ev.Err != nil) != want.bad || ev.Rev <= rev {
			t.Fatalf("event = %+v (%s), want %s %s %d bad=%v", ev, ev.Type, want.typ, want.key, want.value, want.bad)
		}
	}
	cancel()
	for range ch { // must close
	}
}

func TestWatchResyncAfterCompaction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := connect(t, startStore(t, storeDir(t)))
	var first int64
	for i := range 5 {
		if err := Put(ctx, c, "/w/k", i); err != nil {
			t.Fatal(err)
		}
		_, rev, _, _ := Get[int](ctx, c, "/w/k")
		if i == 0 {
			first = rev
		}
	}
	_, cur, err := List[int](ctx, c, "/w/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Etcd().Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	ch := Watch[int](ctx, c, "/w/", first)
	ev := next(t, ch)
	if ev.Type != EventResync || ev.Rev != cur {
		t.Fatalf("event = %+v, want resync at %d", ev, cur)
	}
	if err := Put(ctx, c, "/w/k", 42); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next(t, ch)
		if ev.Type == EventPut && ev.Value == 42 {
			break
		}
	}
}

func TestWatchResumesAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dir := storeDir(t)
	e := startStore(t, dir)
	c := connect(t, e)
	ch := Watch[string](ctx, c, "/w/", 0)
	// the watch is established once a first event arrives
	eventually(t, 10*time.Second, func() error {
		if err := Put(ctx, c, "/w/probe", "p"); err != nil {
			return err
		}
		select {
		case ev := <-ch:
			if ev.Key == "/w/probe" {
				return nil
			}
			return fmt.Errorf("unexpected event %+v", ev)
		case <-time.After(500 * time.Millisecond):
			return errors.New("watch not established")
		}
	})
	for len(ch) > 0 {
		<-ch
	}

	e.Close()
	e2 := startStore(t, dir)
	// a write the watcher's connection did not see being made
	other := connect(t, e2)
	if err := Put(ctx, other, "/w/after", "x"); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next(t, ch)
		if ev.Key == "/w/probe" {
			continue // a probe put raced with the first read
		}
		if ev.Type != EventPut || ev.Key != "/w/after" || ev.Value != "x" {
			t.Fatalf("event after restart = %+v", ev)
		}
		break
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := startStore(t, storeDir(t))
	obs := connect(t, e)

	t.Run("update and close", func(t *testing.T) {
		c := connect(t, e)
		r, err := c.Register(ctx, "/shoal/nodes/n1", nodeInfo{Name: "n1"}, testTTL)
		if err != nil {
			t.Fatal(err)
		}
		if r.Lease() == 0 {
			t.Fatal("no lease")
		}
		if err := r.Update(ctx, nodeInfo{Name: "n1", CPU: 4}); err != nil {
			t.Fatal(err)
		}
		resp, err := obs.Etcd().Get(ctx, "/shoal/nodes/n1")
		if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != r.Lease() {
			t.Fatalf("key not on the registration's lease: %v %v", resp, err)
		}
		got, _, _, _ := Get[nodeInfo](ctx, obs, "/shoal/nodes/n1")
		if got.CPU != 4 {
			t.Fatalf("after Update value = %+v", got)
		}
		// still there after more than a TTL: the keep-alives work
		time.Sleep(testTTL + time.Second)
		if _, _, found, _ := Get[nodeInfo](ctx, obs, "/shoal/nodes/n1"); !found {
			t.Fatal("key expired although kept alive")
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, found, _ := Get[nodeInfo](ctx, obs, "/shoal/nodes/n1"); found {
			t.Fatal("key still there after Close")
		}
	})

	t.Run("expires when keep-alives stop", func(t *testing.T) {
		c := connect(t, e)
		if _, err := c.Register(ctx, "/shoal/nodes/n2", nodeInfo{Name: "n2"}, testTTL); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		c.Close() // no revoke: the lease must expire
		eventually(t, testTTL+5*time.Second, func() error {
			if _, _, found, _ := Get[nodeInfo](ctx, obs, "/shoal/nodes/n2"); found {
				return errors.New("key still there")
			}
			return nil
		})
		t.Logf("key expired %s after the keep-alives stopped", time.Since(stopped).Round(100*time.Millisecond))
	})
}

func TestRegisterComesBackAfterStoreOutage(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dir := storeDir(t)
	e := startStore(t, dir)
	c := connect(t, e)
	r, err := c.Register(ctx, "/shoal/nodes/n1", nodeInfo{Name: "n1"}, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first := r.Lease()

	e.Close()
	// longer than the TTL: the client gives the lease up
	eventually(t, testTTL+5*time.Second, func() error {
		if r.Lease() != 0 {
			return errors.New("lease still held")
		}
		return nil
	})
	if err := r.Update(ctx, nodeInfo{Name: "n1", CPU: 8}); err != nil {
		t.Fatalf("Update while the store is down: %v", err)
	}

	e2 := startStore(t, dir)
	obs := connect(t, e2)
	eventually(t, 15*time.Second, func() error {
		v, _, found, err := Get[nodeInfo](ctx, obs, "/shoal/nodes/n1")
		if err != nil || !found || v.CPU != 8 || r.Lease() == 0 || r.Lease() == first {
			return fmt.Errorf("found=%v value=%+v err=%v lease=%x (first %x)", found, v, err, r.Lease(), first)
		}
		return nil
	})
	// The key is on the new lease, not on the one the store had before it went down, so that it
	// stays when that one expires after the restart.
	resp, err := obs.cli.Get(ctx, "/shoal/nodes/n1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get: %v %v", resp, err)
	}
	if clientv3.LeaseID(resp.Kvs[0].Lease) == first {
		t.Fatal("the key is still on the lease from before the outage")
	}
	time.Sleep(testTTL + time.Second)
	// A loaded machine may starve the keep-alives of a 2 s lease; the registration then
	// re-creates it, so the key is back at once in any case.
	eventually(t, 2*testTTL, func() error {
		if _, _, found, err := Get[nodeInfo](ctx, obs, "/shoal/nodes/n1"); err != nil || !found {
			return fmt.Errorf("key gone after the old lease expired (err %v)", err)
		}
		return nil
	})
}

func TestRequestsCountWritesAndWatchEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := connect(t, startStore(t, storeDir(t)))
	before := c.Requests()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := Watch[string](wctx, c, "/r/", 0)
	if err := Put(ctx, c, "/r/a", "first"); err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, c, "/r/b", strings.Repeat("x", 1000)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-events
	}
	if _, _, err := List[string](ctx, c, "/r/"); err != nil {
		t.Fatal(err)
	}
	got := c.Requests().Sub(before)
	if got.Writes != 2 || got.Reads < 1 || got.KeysRead < 2 {
		t.Errorf("counted %+v, want 2 writes and a read of 2 keys", got)
	}
	if got.BytesWritten < 1000 || got.BytesWritten > 1200 {
		t.Errorf("counted %d bytes written for two puts of about 1,020 bytes", got.BytesWritten)
	}
	if got.WatchEvents != 2 {
		t.Errorf("counted %d watch events, want 2", got.WatchEvents)
	}
}
