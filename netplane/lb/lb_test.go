package lb

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

var (
	vip     = netip.MustParseAddr("10.96.0.10")
	vipTCP  = netip.AddrPortFrom(vip, 80)
	vipUDP  = netip.AddrPortFrom(vip, 53)
	testCtx = context.Background()
)

func openLB(t testing.TB, e *env) *LB {
	t.Helper()
	l, err := Open(e.cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Remove(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Remove: %v", err)
		}
	})
	return l
}

func upsert(t testing.TB, l *LB, s Service) {
	t.Helper()
	if err := l.Upsert(testCtx, s); err != nil {
		t.Fatalf("Upsert %s: %v", s, err)
	}
}

func (e *env) backends(idx ...int) []netip.AddrPort {
	out := make([]netip.AddrPort, len(idx))
	for i, k := range idx {
		out[i] = e.backend(k)
	}
	return out
}

// roundRobin checks that rs visit every id in want once per round.
func roundRobin(t *testing.T, rs []result, want []string) {
	t.Helper()
	got := ids(rs)
	for round := 0; round+len(want) <= len(got); round += len(want) {
		r := slices.Clone(got[round : round+len(want)])
		slices.Sort(r)
		if !slices.Equal(r, want) {
			t.Fatalf("backends %v: round %d is %v, want each of %v once", got, round/len(want), r, want)
		}
	}
}

func TestTranslation(t *testing.T) {
	e := newEnv(t, 0)
	e.startBackends(t, "b", 3)
	l := openLB(t, e)
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(1, 2, 3)})
	upsert(t, l, Service{VIP: vip, Port: 53, Proto: UDP, Backends: e.backends(1, 2, 3)})
	all := []string{"b1", "b2", "b3"}

	tests := []struct {
		mode   string
		target netip.AddrPort
		check  func(t *testing.T, r result)
	}{
		{"tcp", vipTCP, func(t *testing.T, r result) {
			if r.Peer != vipTCP.String() {
				t.Errorf("getpeername = %s, want the VIP %s", r.Peer, vipTCP)
			}
		}},
		{"udp", vipUDP, func(t *testing.T, r result) {
			if r.Peer != vipUDP.String() {
				t.Errorf("getpeername = %s, want the VIP %s", r.Peer, vipUDP)
			}
		}},
		{"udp-unconnected", vipUDP, func(t *testing.T, r result) {
			if r.From != vipUDP.String() {
				t.Errorf("recvfrom source = %s, want the VIP %s", r.From, vipUDP)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			rs := e.run(t, tc.mode, tc.target, 6)
			for _, r := range rs {
				tc.check(t, r)
			}
			roundRobin(t, rs, all)
		})
	}

	t.Run("not a service", func(t *testing.T) {
		// Another port of the VIP is left alone and hits the unreachable route.
		r := e.startClient(t, "tcp", netip.AddrPortFrom(vip, 81), 1).next()
		if r.Errno == 0 || r.Errno == int(syscall.ECONNREFUSED) {
			t.Fatalf("connect to a non-service port: %+v, want the route's error", r)
		}
		// Backends are reachable directly and are not rewritten.
		rs := e.run(t, "tcp", e.backend(2), 2)
		if got := joinIDs(rs); got != "b2,b2" {
			t.Fatalf("direct connections went to %s", got)
		}
	})
}

func TestNoBackends(t *testing.T) {
	e := newEnv(t, 0)
	l := openLB(t, e)
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP})
	upsert(t, l, Service{VIP: vip, Port: 53, Proto: UDP})
	for _, tc := range []struct {
		mode   string
		target netip.AddrPort
		op     string
	}{
		{"tcp", vipTCP, "connect"},
		{"udp", vipUDP, "connect"},
		{"udp-unconnected", vipUDP, "sendto"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := e.startClient(t, tc.mode, tc.target, 1).next()
			if r.Errno != int(syscall.ECONNREFUSED) || r.Op != tc.op {
				t.Fatalf("got %+v, want %s to fail with ECONNREFUSED", r, tc.op)
			}
			if r.MS > 1000 {
				t.Errorf("refusal took %d ms", r.MS)
			}
		})
	}
}

func TestBackendChanges(t *testing.T) {
	e := newEnv(t, 0)
	e.startBackends(t, "b", 4)
	l := openLB(t, e)
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(1, 2, 3)})
	upsert(t, l, Service{VIP: vip, Port: 53, Proto: UDP, Backends: e.backends(1, 2, 3)})

	t.Run("removed backend gets no new connection", func(t *testing.T) {
		upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(1, 3)})
		roundRobin(t, e.run(t, "tcp", vipTCP, 6), []string{"b1", "b3"})
		upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(1, 3, 4)})
		roundRobin(t, e.run(t, "tcp", vipTCP, 6), []string{"b1", "b3", "b4"})
	})

	t.Run("connected UDP socket to a removed backend is destroyed", func(t *testing.T) {
		c := e.startClient(t, "udp-hold", vipUDP, 0)
		first := c.next()
		if first.Err != "" || first.Peer != vipUDP.String() {
			t.Fatalf("first exchange: %+v", first)
		}
		keep := []netip.AddrPort{}
		for i := 1; i <= 3; i++ {
			if first.ID != "b"+string(rune('0'+i)) {
				keep = append(keep, e.backend(i))
			}
		}
		upsert(t, l, Service{VIP: vip, Port: 53, Proto: UDP, Backends: keep})
		c.resume()
		r := c.next()
		if r.Err == "" {
			t.Fatalf("socket connected to removed backend %s still answers: %+v", first.ID, r)
		}
		t.Logf("socket connected to removed backend %s: %s failed: %s", first.ID, r.Op, r.Err)
		// A new socket goes to a remaining backend.
		for _, r := range e.run(t, "udp", vipUDP, 4) {
			if r.ID == first.ID {
				t.Fatalf("new socket reached removed backend %s", r.ID)
			}
		}
	})

	t.Run("connected UDP socket to a kept backend lives", func(t *testing.T) {
		upsert(t, l, Service{VIP: vip, Port: 53, Proto: UDP, Backends: e.backends(1, 2, 3)})
		c := e.startClient(t, "udp-hold", vipUDP, 0)
		first := c.next()
		var others []netip.AddrPort
		for i := 1; i <= 4; i++ {
			if first.ID != "b"+string(rune('0'+i)) {
				others = append(others, e.backend(i))
			}
		}
		// Drop one backend that is not the socket's.
		upsert(t, l, Service{VIP: vip, Port: 53, Proto: UDP, Backends: append(others[:1], e.backend(int(first.ID[1]-'0')))})
		c.resume()
		if r := c.next(); r.Err != "" || r.ID != first.ID {
			t.Fatalf("socket to kept backend %s: %+v", first.ID, r)
		}
	})

	t.Run("deleted service refuses nothing and is gone", func(t *testing.T) {
		if err := l.Delete(testCtx, vip, 80, TCP); err != nil {
			t.Fatal(err)
		}
		if err := l.Delete(testCtx, vip, 80, TCP); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		r := e.startClient(t, "tcp", vipTCP, 1).next()
		if r.Errno == 0 || r.Errno == int(syscall.ECONNREFUSED) {
			t.Fatalf("connect to deleted service: %+v, want the route's error", r)
		}
	})
}

func TestAffinity(t *testing.T) {
	e := newEnv(t, 0)
	e.startBackends(t, "b", 3)
	l := openLB(t, e)
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(1, 2, 3), Affinity: ClientIP, AffinityTimeout: time.Hour})
	rs := e.run(t, "tcp", vipTCP, 5)
	for _, r := range rs[1:] {
		if r.ID != rs[0].ID {
			t.Fatalf("ClientIP affinity: connections went to %s", joinIDs(rs))
		}
	}
	// A second client process in the same namespace is the same client.
	if r := e.run(t, "tcp", vipTCP, 1)[0]; r.ID != rs[0].ID {
		t.Fatalf("second process went to %s, want %s", r.ID, rs[0].ID)
	}
	// Removing the sticky backend moves the client.
	var rest []netip.AddrPort
	for i := 1; i <= 3; i++ {
		if rs[0].ID != "b"+string(rune('0'+i)) {
			rest = append(rest, e.backend(i))
		}
	}
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: rest, Affinity: ClientIP, AffinityTimeout: time.Hour})
	moved := e.run(t, "tcp", vipTCP, 3)
	for _, r := range moved[1:] {
		if r.ID == rs[0].ID || r.ID != moved[0].ID {
			t.Fatalf("after removing %s: %s", rs[0].ID, joinIDs(moved))
		}
	}
	// Without affinity the same client is spread again.
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(1, 2, 3)})
	roundRobin(t, e.run(t, "tcp", vipTCP, 3), []string{"b1", "b2", "b3"})
}

func TestRestart(t *testing.T) {
	e := newEnv(t, 0)
	e.startBackends(t, "b", 4)
	l, err := Open(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := l
	t.Cleanup(func() { _ = first.Close() })
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(1, 2, 3)})
	upsert(t, l, Service{VIP: vip, Port: 53, Proto: UDP, Backends: e.backends(1, 2, 3)})
	held := e.startClient(t, "tcp-hold", vipTCP, 0)
	if r := held.next(); r.Err != "" {
		t.Fatalf("held connection: %+v", r)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Services(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Services after Close: %v, want ErrClosed", err)
	}

	// The daemon is down: everything keeps working.
	held.resume()
	if r := held.next(); r.Err != "" || r.ID != "ping" {
		t.Fatalf("connection opened before Close: %+v", r)
	}
	roundRobin(t, e.run(t, "tcp", vipTCP, 3), []string{"b1", "b2", "b3"})
	for _, r := range e.run(t, "udp-unconnected", vipUDP, 3) {
		if r.From != vipUDP.String() {
			t.Fatalf("unconnected UDP reply from %s while the daemon is down", r.From)
		}
	}

	// The daemon comes back and adopts the pins.
	l = openLB(t, e)
	svcs, err := l.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 {
		t.Fatalf("after restart Services() = %v, want the 2 services", svcs)
	}
	upsert(t, l, Service{VIP: vip, Port: 80, Proto: TCP, Backends: e.backends(4)})
	upsert(t, l, Service{VIP: netip.MustParseAddr("10.96.0.11"), Port: 80, Proto: TCP, Backends: e.backends(2)})
	if got := joinIDs(e.run(t, "tcp", vipTCP, 2)); got != "b4,b4" {
		t.Fatalf("after restart and Upsert connections went to %s", got)
	}
	if got := joinIDs(e.run(t, "tcp", netip.MustParseAddrPort("10.96.0.11:80"), 1)); got != "b2" {
		t.Fatalf("new service after restart went to %s", got)
	}
	svcs, err = l.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 3 {
		t.Fatalf("Services() = %v, want 3", svcs)
	}
}

func TestTwoInstances(t *testing.T) {
	a, b := newEnv(t, 1), newEnv(t, 2)
	a.startBackends(t, "a", 2)
	b.startBackends(t, "b", 2)
	la, lbb := openLB(t, a), openLB(t, b)
	upsert(t, la, Service{VIP: vip, Port: 80, Proto: TCP, Backends: a.backends(1, 2)})
	upsert(t, lbb, Service{VIP: vip, Port: 80, Proto: TCP, Backends: b.backends(1, 2)})
	upsert(t, lbb, Service{VIP: vip, Port: 53, Proto: UDP, Backends: b.backends(1)})

	roundRobin(t, a.run(t, "tcp", vipTCP, 4), []string{"a1", "a2"})
	roundRobin(t, b.run(t, "tcp", vipTCP, 4), []string{"b1", "b2"})

	// a has no UDP service: its UDP to the VIP is not translated.
	if r := a.startClient(t, "udp", vipUDP, 1).next(); r.Err == "" {
		t.Fatalf("instance a translated b's UDP service: %+v", r)
	}
	sa, err := la.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(sa) != 1 {
		t.Fatalf("instance a lists %v", sa)
	}

	if err := lbb.Remove(); err != nil {
		t.Fatal(err)
	}
	roundRobin(t, a.run(t, "tcp", vipTCP, 2), []string{"a1", "a2"})
	if r := b.startClient(t, "tcp", vipTCP, 1).next(); r.Err == "" {
		t.Fatalf("removed instance b still translates: %+v", r)
	}
}
