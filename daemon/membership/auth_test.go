package membership

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/store"
)

// TestUpgradeToAuth turns over a store that an earlier version made, which checks no
// certificates and has no users: a server and an agent registered, and an agent the cluster
// knows that is stopped. The server starts with this version first: it makes its own user but
// leaves authentication off while a registered node has none (the agent, still of the earlier
// version, would be locked out). The agent starts with this version and makes its own user; the
// server then turns authentication on, after making the stopped agent's user. No node is locked
// out: each reaches its own keys, and the agents only theirs.
func TestUpgradeToAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd member")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const port = 17444
	dirs := []string{t.TempDir(), t.TempDir()}
	var nodes []*testNode
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	lo := fmt.Sprintf("127.%d.%d.", 1+rand.IntN(250), 1+rand.IntN(250))
	log := slog.New(slog.DiscardHandler)
	server := Config{Name: "s1", DataDir: dirs[0], Addresses: []string{lo + "1"}, Logger: log}
	agent := Config{Name: "a1", DataDir: dirs[1], Addresses: []string{lo + "2"}, Logger: log, Role: join.RoleAgent}

	// The earlier version: no users, no authentication.
	s1, err := startTestNode(t, ctx, server, port)
	if err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, s1)
	tok, _, err := join.CreateToken(ctx, s1.m.Store(), s1.m.ca.Hash(), join.TokenSpec{Role: join.RoleAgent, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	joining := agent
	joining.Join, joining.JoinToken = lo+"1:"+strconv.Itoa(port), tok.String()
	a1, err := startTestNode(t, ctx, joining, port)
	if err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, a1)
	register := func(st *store.Client, name string) {
		t.Helper()
		for _, key := range []string{cluster.NodesPrefix + name, "/shoal/known/" + name} {
			if err := store.Put(ctx, st, key, map[string]string{"name": name}); err != nil {
				t.Fatal(err)
			}
		}
	}
	register(s1.m.Store(), "s1")
	register(a1.m.Store(), "a1")
	if err := store.Put(ctx, s1.m.Store(), "/shoal/known/a2", map[string]string{"name": "a2"}); err != nil {
		t.Fatal(err)
	}
	if users, err := s1.m.Store().Users(ctx); err != nil || len(users) != 0 {
		t.Fatalf("the earlier version's store has users %v, %v", users, err)
	}

	withAuth := func(c Config) Config {
		c.AgentPermissions, c.Nodes = cluster.AgentPermissions, cluster.NodeNames
		return c
	}
	// The server first: its user, and authentication still off.
	s1.stop()
	if s1, err = startTestNode(t, ctx, withAuth(server), port); err != nil {
		t.Fatal(err)
	}
	nodes[0] = s1
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { _ = s1.m.Run(runCtx) }()
	if on, err := s1.m.Store().AuthEnabled(ctx); err != nil || on {
		t.Fatalf("authentication %v, %v with an agent of the earlier version registered; want it off", on, err)
	}
	if err := store.Put(ctx, a1.m.Store(), cluster.NodesPrefix+"a1", map[string]string{"name": "a1"}); err != nil {
		t.Fatalf("the agent of the earlier version is locked out: %v", err)
	}

	// The agent next: it makes its own user, and the server turns authentication on.
	a1.stop()
	if a1, err = startTestNode(t, ctx, withAuth(agent), port); err != nil {
		t.Fatal(err)
	}
	nodes[1] = a1
	deadline := time.Now().Add(30 * time.Second)
	for {
		on, err := s1.m.Store().AuthEnabled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if on {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not turn authentication on once every registered node had a user")
		}
		time.Sleep(200 * time.Millisecond)
	}
	users, err := s1.m.Store().Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, admin := range map[string]bool{"s1": true, "a1": false, "a2": false} {
		if got, ok := users[name]; !ok || got != admin {
			t.Errorf("user %s: admin %v (exists %v), want admin %v", name, got, ok, admin)
		}
	}
	for _, tc := range []struct {
		st    *store.Client
		key   string
		allow bool
	}{
		{s1.m.Store(), "/shoal/placements/a1/u1", true},
		{a1.m.Store(), cluster.NodesPrefix + "a1", true},
		{a1.m.Store(), "/shoal/status/a1/u1", true},
		{a1.m.Store(), "/shoal/placements/a1/u1", false},
		{a1.m.Store(), cluster.NodesPrefix + "s1", false},
	} {
		if err := store.Put(ctx, tc.st, tc.key, "x"); (err == nil) != tc.allow {
			t.Errorf("write %s: %v, want allowed %v", tc.key, err, tc.allow)
		}
	}
	if _, _, ok, err := store.Get[join.AuthRecord](ctx, a1.m.Store(), join.AuthKey); err != nil || !ok {
		t.Errorf("the agent reads the authentication record: %v, %v", ok, err)
	}
}
