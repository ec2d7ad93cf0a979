package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
)

// testNode is a node of TestJoin: its membership and cluster endpoint.
type testNode struct {
	cfg Config
	m   *Membership
	srv *http.Server
}

func (n *testNode) stop() {
	if n.srv != nil {
		n.srv.Close()
	}
	if n.m != nil {
		n.m.Close()
	}
}

// liveName is a node name that the test's nodes report registered and running.
const liveName = "node-live"

func nodeLive(_ context.Context, name string) (bool, error) { return name == liveName, nil }

// startTestNode sets up the node's membership as the daemon does and serves its joins on port
// of its address.
func startTestNode(t *testing.T, ctx context.Context, cfg Config, port int) (*testNode, error) {
	t.Helper()
	n := &testNode{cfg: cfg}
	var err error
	if n.m, err = Setup(ctx, cfg); err != nil {
		return nil, err
	}
	tc, err := n.m.ServerTLS()
	if err != nil {
		n.stop()
		return nil, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(n.m.Address(), strconv.Itoa(port)))
	if err != nil {
		n.stop()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(join.Path, n.m.JoinHandler(nodeLive, nil))
	n.srv = &http.Server{Handler: mux, TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.srv.ServeTLS(l, "", "") }()
	return n, nil
}

// TestJoin forms a cluster on loopback addresses: the first node founds it, the next two join
// as store members (learners promoted to voters), a fourth server joins as a store client with
// the CA key, which admits a fifth node itself, and an agent with an agent token; a joined member
// starts again from its data dir alone, its token deleted; a token with a wrong secret, unknown,
// deleted, expired, of an older version or of the wrong role, a wrong CA and the name of a
// running node are refused at once. The store checks every request's certificate: the agent
// reaches its own keys only, and once its user is deleted it learns that it was removed; it
// joins again under the same name with a new token and gets a new user.
func TestJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four etcd members")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const port = 17443
	dirs := make([]string, 10)
	for i := range dirs {
		dirs[i] = t.TempDir() // made before the cleanup below, so removed after it
	}
	var nodes []*testNode
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	// Loopback addresses of their own, so that the fixed store ports never collide with another
	// run on the machine.
	lo := fmt.Sprintf("127.%d.%d.", 1+rand.IntN(250), 1+rand.IntN(250))
	addr := func(i int) string { return lo + strconv.Itoa(40+i) }
	log := slog.New(slog.DiscardHandler)
	cfg := func(i int) Config {
		return Config{Name: "node-" + strconv.Itoa(i), DataDir: dirs[i], Addresses: []string{addr(i)}, Logger: log,
			AgentPermissions: cluster.AgentPermissions, Nodes: cluster.NodeNames}
	}
	var console, founderLog bytes.Buffer
	fc := cfg(1)
	fc.Console, fc.Logger = &console, slog.New(slog.NewTextHandler(&founderLog, nil))
	first, err := startTestNode(t, ctx, fc, port)
	if err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, first)
	if !first.m.Member() || first.m.Address() != addr(1) {
		t.Fatalf("the founder: member %v, address %q; want a member on %s", first.m.Member(), first.m.Address(), addr(1))
	}
	tok, err := pki.ReadToken(filepath.Join(first.cfg.DataDir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	joinAt := addr(1) + ":" + strconv.Itoa(port)
	if strings.Count(console.String(), tok.String()) != 1 {
		t.Errorf("the console does not show the first token once:\n%s", console.String())
	}
	if strings.Contains(founderLog.String(), tok.Secret) || !strings.Contains(founderLog.String(), "shoal token create") {
		t.Errorf("the founder's log shows the token's secret, or does not say how to make tokens:\n%s", founderLog.String())
	}
	if fi, err := os.Stat(filepath.Join(first.cfg.DataDir, tokenFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the token file: %v, %v; want mode 0600", fi, err)
	}
	if infos, err := first.m.ListTokens(ctx); err != nil || len(infos) != 1 || infos[0].ID != tok.ID || infos[0].Role != join.RoleServer ||
		time.Until(infos[0].Expires) < join.DefaultTokenTTL-time.Minute {
		t.Errorf("the tokens after founding: %+v, %v; want one server token for 24 h", infos, err)
	}

	mkToken := func(role join.Role, ttl time.Duration, created time.Time) pki.Token {
		t.Helper()
		tok, _, err := join.CreateToken(ctx, first.m.Store(), first.m.ca.Hash(), join.TokenSpec{Role: role, TTL: ttl}, created)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	agentTok := mkToken(join.RoleAgent, time.Hour, time.Now())
	refusals := []struct {
		name, token string
		role        join.Role
		want        string
	}{
		{"WrongSecret", pki.Token{CAHash: tok.CAHash, ID: tok.ID, Secret: strings.Repeat("0", 16)}.String(), "", "secret is wrong"},
		{"UnknownToken", pki.Token{CAHash: tok.CAHash, ID: "zzzzzz", Secret: tok.Secret}.String(), "", "not known to the cluster"},
		{"WrongCA", pki.Token{CAHash: strings.Repeat("a", 64), ID: tok.ID, Secret: tok.Secret}.String(), "", "does not present the CA"},
		{"ExpiredToken", mkToken(join.RoleServer, time.Hour, time.Now().Add(-2*time.Hour)).String(), "", "expired at"},
		{"AgentTokenAsServer", agentTok.String(), join.RoleServer, "admits agents only"},
		{"OldToken", "shoal1." + tok.CAHash + "." + strings.Repeat("0", 32), "", "shoal token create"},
	}
	deleted := mkToken(join.RoleServer, time.Hour, time.Now())
	if err := first.m.DeleteToken(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	refusals = append(refusals, struct {
		name, token string
		role        join.Role
		want        string
	}{"DeletedToken", deleted.String(), "", "not known to the cluster"})
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg(9)
			c.Join, c.JoinToken, c.Role = joinAt, tc.token, tc.role
			start := time.Now()
			_, err := Setup(ctx, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("join: %v, want an error with %q", err, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the refusal took %v: was it tried again?", d)
			}
		})
	}
	t.Run("RunningName", func(t *testing.T) {
		c := cfg(8)
		c.Name, c.Join, c.JoinToken = liveName, joinAt, tok.String()
		_, err := Setup(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "already in the cluster and running") {
			t.Fatalf("join with the name of a running node: %v", err)
		}
	})

	for i := 2; i <= 4; i++ {
		c := cfg(i)
		c.Join, c.JoinToken = joinAt, tok.String()
		n, err := startTestNode(t, ctx, c, port)
		if err != nil {
			t.Fatalf("join node %d: %v", i, err)
		}
		nodes = append(nodes, n)
	}
	members, err := first.m.Store().Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("%d store members, want 3: %+v", len(members), members)
	}
	for i, m := range members {
		if m.Learner || m.Name != nodes[i].cfg.Name {
			t.Errorf("member %d: %+v, want %s voting", i, m, nodes[i].cfg.Name)
		}
		if len(m.ClientURLs) != 1 || !strings.HasPrefix(m.ClientURLs[0], "https://") {
			t.Errorf("member %s advertises %v, want one https URL", m.Name, m.ClientURLs)
		}
	}
	if on, err := first.m.Store().AuthEnabled(ctx); err != nil || !on {
		t.Errorf("the store's authentication: %v, %v; want it on from the founding", on, err)
	}
	if nodes[3].m.Member() || nodes[3].m.ca.Key == nil || nodes[3].m.Role() != join.RoleServer {
		t.Errorf("the fourth node runs a store member, or holds no CA key, or is not a server (%s)", nodes[3].m.Role())
	}
	if _, _, err := nodes[3].m.CreateToken(ctx, join.TokenSpec{Role: join.RoleAgent, TTL: time.Hour}); err != nil {
		t.Errorf("a token made on a server that runs no member: %v", err)
	}
	if role := pki.CertPEMRole(nodes[3].m.certPEM); role != "server" {
		t.Errorf("the fourth node's certificate names the role %q, want server", role)
	}

	// An agent joins with an agent token: never a store member, no CA key, even asking for
	// nothing in particular.
	ca := cfg(6)
	ca.Join, ca.JoinToken = joinAt, agentTok.String()
	agent, err := startTestNode(t, ctx, ca, port)
	if err != nil {
		t.Fatalf("join an agent: %v", err)
	}
	nodes = append(nodes, agent)
	if agent.m.Member() || agent.m.ca.Key != nil || agent.m.Role() != join.RoleAgent {
		t.Errorf("the agent: member %v, CA key %v, role %s", agent.m.Member(), agent.m.ca.Key != nil, agent.m.Role())
	}
	if role := pki.CertPEMRole(agent.m.certPEM); role != "agent" {
		t.Errorf("the agent's certificate names the role %q, want agent", role)
	}
	// The agent's certificate reaches its own keys, and nothing of the others'.
	for _, tc := range []struct {
		key   string
		allow bool
	}{
		{"/shoal/nodes/node-6", true},
		{"/shoal/status/node-6/u1", true},
		{"/shoal/placements/node-6/u1", false},
		{"/shoal/placements/node-2/u1", false},
		{"/shoal/nodes/node-2", false},
		{"/shoal/test/a", false},
		{join.AuthKey, false},
	} {
		if err := store.Put(ctx, agent.m.Store(), tc.key, "x"); (err == nil) != tc.allow || (err != nil && !store.IsPermissionDenied(err)) {
			t.Errorf("the agent writes %s: %v, want allowed %v", tc.key, err, tc.allow)
		}
	}
	if _, _, err := agent.m.CreateToken(ctx, join.TokenSpec{Role: join.RoleAgent, TTL: time.Hour}); !errors.Is(err, join.ErrNotServer) ||
		!strings.Contains(err.Error(), "this node is an agent") {
		t.Errorf("a token made on an agent: %v, want ErrNotServer", err)
	}
	if st, err := loadState(ca.DataDir); err != nil || st.Role != join.RoleAgent || st.Member {
		t.Errorf("the agent's state: %+v, %v", st, err)
	}
	if _, err := agent.m.ListTokens(ctx); !errors.Is(err, join.ErrNotServer) {
		t.Errorf("the tokens listed on an agent: %v, want ErrNotServer", err)
	}
	list, err := first.m.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		if strings.Contains(fmt.Sprintf("%+v", info), agentTok.Secret) || strings.Contains(fmt.Sprintf("%+v", info), pki.HashSecret(agentTok.Secret)) {
			t.Errorf("the token list shows a secret or its hash: %+v", info)
		}
	}
	if eps := nodes[3].m.Endpoints(); len(eps) == 0 || !strings.HasPrefix(eps[0], "https://") {
		t.Errorf("the fourth node's store endpoints %v, want the members' https URLs", eps)
	}
	if err := store.Put(ctx, nodes[3].m.Store(), "/shoal/test/a", "from the client node"); err != nil {
		t.Fatal(err)
	}
	v, _, ok, err := store.Get[string](ctx, nodes[1].m.Store(), "/shoal/test/a")
	if err != nil || !ok || v != "from the client node" {
		t.Fatalf("read on node 2: %q %v %v", v, ok, err)
	}

	// The fourth node, a server that runs no store member, admits others; the agent does not,
	// and says where to go.
	c := cfg(5)
	c.Join, c.JoinToken, c.Role = addr(4)+":"+strconv.Itoa(port), tok.String(), join.RoleAgent
	fifth, err := startTestNode(t, ctx, c, port)
	if err != nil {
		t.Fatalf("join through the fourth node: %v", err)
	}
	nodes = append(nodes, fifth)
	c = cfg(7)
	c.Join, c.JoinToken = addr(6)+":"+strconv.Itoa(port), tok.String()
	if _, err := Setup(ctx, c); err == nil || !strings.Contains(err.Error(), addr(1)) {
		t.Errorf("join through an agent: %v", err)
	}

	// The agent's user deleted (`shoal node remove`), its next refused request tells it that it
	// was removed; joined again under its name with a new token, it gets a new user.
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	ran := make(chan error, 1)
	go func() { ran <- agent.m.Run(rctx) }()
	if err := first.m.Store().DeleteUser(ctx, agent.cfg.Name); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, agent.m.Store(), "/shoal/nodes/node-6", "x"); !store.IsPermissionDenied(err) {
		t.Errorf("a removed agent writes its node record: %v", err)
	}
	select {
	case err := <-ran:
		if !errors.Is(err, ErrRemoved) {
			t.Errorf("the removed agent's Run: %v, want ErrRemoved", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the removed agent's Run did not notice its removal")
	}
	agent.stop()
	if _, err := Setup(ctx, agent.cfg); !errors.Is(err, ErrRemoved) {
		t.Errorf("the removed agent starts again: %v, want ErrRemoved", err)
	}
	rejoin := cfg(0)
	rejoin.Name, rejoin.Join, rejoin.JoinToken = agent.cfg.Name, joinAt, mkToken(join.RoleAgent, time.Hour, time.Now()).String()
	rejoined, err := startTestNode(t, ctx, rejoin, port)
	if err != nil {
		t.Fatalf("the removed agent joins again: %v", err)
	}
	nodes = append(nodes, rejoined)
	if err := store.Put(ctx, rejoined.m.Store(), "/shoal/nodes/node-6", "x"); err != nil {
		t.Errorf("the agent joined again writes its node record: %v", err)
	}

	// Node 2 starts again from its data dir, its token deleted: it needs none.
	if err := first.m.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	nodes[1].stop()
	again := nodes[1].cfg
	again.Join, again.JoinToken = joinAt, tok.String()
	n2, err := startTestNode(t, ctx, again, port)
	if err != nil {
		t.Fatalf("restart node 2: %v", err)
	}
	nodes[1] = n2
	if err := store.Put(ctx, n2.m.Store(), "/shoal/test/b", "after the restart"); err != nil {
		t.Fatal(err)
	}

	// With node 3 gone, two of three members keep the store writable.
	nodes[2].stop()
	nodes = append(nodes[:2], nodes[3:]...)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := store.Put(wctx, nodes[2].m.Store(), "/shoal/test/c", "one member lost"); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("write with one of three members lost: %v", err)
	}
}
