package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const masterPrefix = "/shoal/master"

type campaignResult struct {
	l   *Leadership
	err error
}

// campaignAsync campaigns in the background; the result arrives on the returned channel.
func campaignAsync(ctx context.Context, c *Client, candidate string) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		l, err := c.Campaign(ctx, masterPrefix, candidate, testTTL)
		ch <- campaignResult{l, err}
	}()
	return ch
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// staleCopy is the leadership as seen by a process that was paused and has noticed nothing.
func staleCopy(l *Leadership) *Leadership {
	return &Leadership{Key: l.Key, Rev: l.Rev, c: l.c, done: make(chan struct{})}
}

func TestElection(t *testing.T) {
	t.Parallel()
	e := startStore(t, storeDir(t))
	obs := connect(t, e)

	tests := []struct {
		name string
		// end ends a's leadership from outside, as a lost session or a paused process would.
		end func(t *testing.T, a *Leadership)
	}{
		{
			name: "session revoked",
			end: func(t *testing.T, a *Leadership) {
				if _, err := obs.Etcd().Revoke(testCtx(t), a.session.Lease()); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "key deleted",
			end: func(t *testing.T, a *Leadership) {
				if err := Delete(testCtx(t), obs, a.Key); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// a paused leader: its keep-alives stop but nothing is revoked; the lease expires
			name: "keep-alives stopped",
			end:  func(t *testing.T, a *Leadership) { a.session.Orphan() },
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			ca, cb := connect(t, e), connect(t, e)
			a, err := ca.Campaign(ctx, masterPrefix, "node-a", testTTL)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := obs.Leader(ctx, masterPrefix); err != nil || got != "node-a" {
				t.Fatalf("Leader = %q, %v; want node-a", got, err)
			}
			bCh := campaignAsync(ctx, cb, "node-b")

			key := fmt.Sprintf("/shoal/test/%d", i)
			if _, err := a.Txn(ctx, clientv3.OpPut(key, "from a")); err != nil {
				t.Fatalf("leader's Txn: %v", err)
			}
			select {
			case r := <-bCh:
				t.Fatalf("second candidate leads while the first does: %+v", r)
			case <-time.After(300 * time.Millisecond):
			}

			ended := time.Now()
			tc.end(t, a)
			var b *Leadership
			select {
			case r := <-bCh:
				if r.err != nil {
					t.Fatal(r.err)
				}
				b = r.l
			case <-time.After(testTTL + 5*time.Second):
				t.Fatal("the second candidate did not take over")
			}
			t.Logf("second candidate leads %s after the first lost", time.Since(ended).Round(10*time.Millisecond))
			defer b.Resign(ctx)
			if b.Rev <= a.Rev {
				t.Fatalf("new leader's revision %d is not above the old one's %d", b.Rev, a.Rev)
			}

			// The old leader, as if it woke up from a pause, cannot write.
			if _, err := staleCopy(a).Txn(ctx, clientv3.OpPut(key, "stale")); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("stale leader's Txn: %v, want ErrNotLeader", err)
			}
			if _, err := a.Txn(ctx, clientv3.OpPut(key, "stale")); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("old leader's Txn: %v, want ErrNotLeader", err)
			}
			resp, err := obs.Etcd().Get(ctx, key)
			if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "from a" {
				t.Fatalf("value after the stale write = %v, %v; want \"from a\"", resp.Kvs, err)
			}
			select {
			case <-a.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("old leadership's Done not closed")
			}
			if _, err := b.Txn(ctx, clientv3.OpPut(key, "from b")); err != nil {
				t.Fatalf("new leader's Txn: %v", err)
			}
			if got, err := obs.Leader(ctx, masterPrefix); err != nil || got != "node-b" {
				t.Fatalf("Leader = %q, %v; want node-b", got, err)
			}
		})
	}
}

func TestResignAndObserve(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := startStore(t, storeDir(t))
	obs := connect(t, e)
	if _, err := obs.Leader(ctx, masterPrefix); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader with no candidates: %v, want ErrNoLeader", err)
	}
	octx, cancel := context.WithCancel(ctx)
	leaders := obs.ObserveLeader(octx, masterPrefix)
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-leaders:
			if got != want {
				t.Fatalf("observed leader %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no leader change observed, want %q", want)
		}
	}
	expect("")

	ca, cb := connect(t, e), connect(t, e)
	a, err := ca.Campaign(ctx, masterPrefix, "node-a", testTTL)
	if err != nil {
		t.Fatal(err)
	}
	expect("node-a")
	bCh := campaignAsync(ctx, cb, "node-b")
	time.Sleep(200 * time.Millisecond)

	resigned := time.Now()
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if !isClosed(a.Done()) {
		t.Fatal("Done not closed after Resign")
	}
	if _, err := a.Txn(ctx, clientv3.OpPut("/x", "y")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Txn after Resign: %v", err)
	}
	r := <-bCh
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("handover after Resign took %s", time.Since(resigned).Round(time.Millisecond))
	expect("node-b")

	// a candidate whose context ends stops campaigning and leaves no key behind
	cctx, ccancel := context.WithCancel(ctx)
	aCh := campaignAsync(cctx, ca, "node-a")
	time.Sleep(200 * time.Millisecond)
	ccancel()
	if r := <-aCh; r.err == nil {
		t.Fatal("Campaign with a cancelled context succeeded")
	}

	// closing the leader's client ends its leadership; the lease expires
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(r.l.Done()) {
		t.Fatal("Done not closed after the client closed")
	}
	expect("")
	cancel()
	for range leaders { // closes
	}
}
