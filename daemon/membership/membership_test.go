package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	mux.Handle(join.Path, n.m.JoinHandler(nodeLive))
	n.srv = &http.Server{Handler: mux, TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.srv.ServeTLS(l, "", "") }()
	return n, nil
}

// TestJoin forms a cluster on loopback addresses: the first node founds it, the next two join
// as store members (learners promoted to voters), a fourth joins as a store client only; a
// joined member starts again from its data dir alone; a wrong token, a wrong CA and the name of
// a running node are refused.
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
		return Config{Name: "node-" + strconv.Itoa(i), DataDir: dirs[i], Addresses: []string{addr(i)}, Logger: log}
	}
	first, err := startTestNode(t, ctx, cfg(1), port)
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

	t.Run("WrongToken", func(t *testing.T) {
		bad := tok
		bad.Secret = strings.Repeat("0", 32)
		c := cfg(9)
		c.Join, c.JoinToken = joinAt, bad.String()
		_, err := Setup(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "join token is wrong") {
			t.Fatalf("join with a wrong secret: %v", err)
		}
	})
	t.Run("WrongCA", func(t *testing.T) {
		bad := tok
		bad.CAHash = strings.Repeat("a", 64)
		c := cfg(9)
		c.Join, c.JoinToken = joinAt, bad.String()
		_, err := Setup(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "does not present the CA") {
			t.Fatalf("join a node with another CA: %v", err)
		}
	})
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
	if nodes[3].m.Member() || nodes[3].m.ca.Key != nil {
		t.Errorf("the fourth node runs a store member or holds the CA key")
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

	// The fourth node cannot admit others, and says where to go.
	c := cfg(5)
	c.Join, c.JoinToken = addr(4)+":"+strconv.Itoa(port), tok.String()
	if _, err := Setup(ctx, c); err == nil || !strings.Contains(err.Error(), addr(1)) {
		t.Errorf("join through a client node: %v", err)
	}

	// Node 2 starts again from its data dir, without the join.
	nodes[1].stop()
	again := nodes[1].cfg
	again.Join, again.JoinToken = "", ""
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
