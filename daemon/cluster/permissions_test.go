package cluster

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/revision"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// storeKeysIn returns every store key the Go files of the packages in dirs spell: the value of
// each string expression that starts with "/shoal/", its constants resolved (within the files,
// and across them by name).
func storeKeysIn(t *testing.T, dirs ...string) []string {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	for _, dir := range dirs {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	consts := map[string]ast.Expr{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						consts[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	var eval func(e ast.Expr, depth int) (string, bool)
	eval = func(e ast.Expr, depth int) (string, bool) {
		if depth > 20 {
			return "", false
		}
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			if c, ok := consts[e.Name]; ok {
				return eval(c, depth+1)
			}
		case *ast.SelectorExpr: // join.TokenPrefix and the like
			if c, ok := consts[e.Sel.Name]; ok {
				return eval(c, depth+1)
			}
		case *ast.ParenExpr:
			return eval(e.X, depth+1)
		case *ast.BinaryExpr:
			if e.Op != token.ADD {
				return "", false
			}
			a, ok1 := eval(e.X, depth+1)
			b, ok2 := eval(e.Y, depth+1)
			return a + b, ok1 && ok2
		}
		return "", false
	}
	seen := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if e, ok := n.(ast.Expr); ok {
				if v, ok := eval(e, 0); ok && strings.HasPrefix(v, prefix) && v != prefix {
					seen[v] = true
				}
			}
			return true
		})
	}
	return slices.Sorted(func(yield func(string) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	})
}

// covered reports whether key is one of entries or lies under one of them.
func covered(key string, entries []string) bool {
	for _, e := range entries {
		if key == e || (strings.HasPrefix(key, e) && (strings.HasSuffix(e, "/") || key[len(e)] == '/')) {
			return true
		}
	}
	return false
}

// TestKeySchemaPermissions fails when a key of the store that the daemon's code spells is
// neither in the agents' table nor listed as a server's only: a new key must be given its
// permissions when it is added.
func TestKeySchemaPermissions(t *testing.T) {
	var entries []string
	for _, a := range agentTable {
		entries = append(entries, a.key)
		if a.read == none || a.why == "" {
			t.Errorf("agent table entry %q: an agent reads what it may write; say why it may", a.key)
		}
	}
	for _, k := range serverOnlyKeys {
		if slices.Contains(entries, k) {
			t.Errorf("%q is both in the agents' table and a server's only", k)
		}
		entries = append(entries, k)
	}
	keys := storeKeysIn(t, ".", "../join", "../membership", "../node", "../api")
	if len(keys) < 20 {
		t.Fatalf("found only %d store keys in the source: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !covered(k, entries) {
			t.Errorf("store key %q is neither in agentTable nor in serverOnlyKeys (daemon/cluster/permissions.go): decide what an agent may do with it", k)
		}
	}
	for _, e := range entries {
		if !slices.ContainsFunc(keys, func(k string) bool { return covered(k, []string{e}) }) {
			t.Errorf("permission entry %q names no key of the source: remove it", e)
		}
	}
}

// authStore is an embedded store whose client URL takes only certificates of a new CA, with
// authentication on and server n1 its admin; connect returns a client with a certificate that
// names a user.
type authStore struct {
	ca      *pki.CA
	dir     string
	url     string
	admin   *store.Client
	clients []*store.Client
}

func newAuthStore(t *testing.T) *authStore {
	t.Helper()
	ctx := context.Background()
	a := &authStore{dir: t.TempDir()}
	var err error
	if a.ca, err = pki.NewCA("test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.ca.Save(a.dir); err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey := a.files(t, "n1", "server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.url = "https://" + l.Addr().String()
	l.Close()
	emb, err := store.StartEmbedded(ctx, store.EmbedConfig{Dir: filepath.Join(t.TempDir(), "store"), Name: "n1", ClientURL: a.url,
		ClientTLS: store.TLSFiles{CertFile: srvCert, KeyFile: srvKey, CAFile: filepath.Join(a.dir, pki.CACertFile)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range a.clients {
			c.Close()
		}
		emb.Close()
	})
	a.admin = a.connect(t, "n1", "server")
	if err := a.admin.EnableAuth(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	return a
}

// files signs a certificate for node with role and returns its certificate and key files.
func (a *authStore) files(t *testing.T, node, role string) (string, string) {
	t.Helper()
	keyPEM, csr, err := pki.NewRequest(node)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.ca.SignNodeRole(csr, node, role, []net.IP{net.ParseIP("127.0.0.1")}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, k := filepath.Join(a.dir, node+".crt"), filepath.Join(a.dir, node+".key")
	if err := os.WriteFile(c, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, k
}

func (a *authStore) connect(t *testing.T, node, role string) *store.Client {
	t.Helper()
	c, k := a.files(t, node, role)
	cl, err := store.Connect(context.Background(), store.Config{Endpoints: []string{a.url}, CertFile: c, KeyFile: k,
		CAFile: filepath.Join(a.dir, pki.CACertFile)})
	if err != nil {
		t.Fatal(err)
	}
	a.clients = append(a.clients, cl)
	return cl
}

// agent makes agent node's user, with AgentPermissions, and connects as it.
func (a *authStore) agent(t *testing.T, node string) *store.Client {
	t.Helper()
	if err := join.SetNodeUser(context.Background(), a.admin, node, join.RoleAgent, AgentPermissions); err != nil {
		t.Fatal(err)
	}
	return a.connect(t, node, "agent")
}

// TestAgentPermissions tries, with an agent's certificate on a store that checks certificates,
// what an agent must not do, and what it must.
func TestAgentPermissions(t *testing.T) {
	ctx := context.Background()
	a := newAuthStore(t)
	for _, key := range []string{placementKey("n2", "u1"), placementKey("n3", "u3"), statusKey("n3", "u3"), nodeKey("n3"),
		metricsKey("n3"), knownKey("n3"), appliedKey, servicesPrefix + "default/web", PodCIDRKey("n3"), desiredPrefix + "abc/Secret/default/s",
		reclaimKey("n2", "c1"), reclaimKey("n3", "c3")} {
		if err := store.Put(ctx, a.admin, key, "{}"); err != nil {
			t.Fatal(err)
		}
	}
	ag := a.agent(t, "n2")
	for _, tc := range []struct {
		key         string
		read, write bool
	}{
		// Its own.
		{nodeKey("n2"), true, true},
		{knownKey("n2"), true, true},
		{metricsKey("n2"), true, true},
		{statusKey("n2", "u1"), true, true},
		{reclaimKey("n2", "c1"), true, true},
		{placementKey("n2", "u1"), true, false}, // a placement for itself: the master's to write
		// What it runs: read only.
		{nodeKey("n3"), true, false},
		{servicesPrefix + "default/web", true, false},
		{PodCIDRKey("n3"), true, false},
		{appliedKey, true, false},
		{convergedKey, true, false},
		{join.AuthKey, true, false},
		// Nothing of the others, nothing of the desired state, the master's or the servers'.
		{placementKey("n3", "u3"), false, false},
		{statusKey("n3", "u3"), false, false},
		{metricsKey("n3"), false, false},
		{knownKey("n3"), false, false},
		{reclaimKey("n3", "c3"), false, false},
		{placementKey("-", "u4"), false, false},
		{desiredPrefix + "abc/Secret/default/s", false, false},
		{seenPrefix + "abc", false, false},
		{masterPrefix + "/694d8f2b1c", false, false},
		{keyringKey, false, false},
		{join.TokenPrefix + "abcdef", false, false},
		{join.JoinsPrefix + "0000000000000001", false, false},
		{eventsPrefix + "1", false, false},
		{cordonKey("n3"), false, false},
		{deletionKey("u3"), false, false},
		{deploymentKey("default", "web"), false, false},
		{claimKey("default", "data"), false, false},
	} {
		_, err := ag.Etcd().Get(ctx, tc.key)
		if tc.read != (err == nil) || (err != nil && !store.IsPermissionDenied(err)) {
			t.Errorf("the agent reads %s: %v, want allowed %v", tc.key, err, tc.read)
		}
		err = store.Put(ctx, ag, tc.key, "{}")
		if tc.write != (err == nil) || (err != nil && !store.IsPermissionDenied(err)) {
			t.Errorf("the agent writes %s: %v, want allowed %v", tc.key, err, tc.write)
		}
	}
	// Whole prefixes: the agent lists what it may, and no prefix that holds another node's keys.
	for _, tc := range []struct {
		prefix string
		allow  bool
	}{
		{placementPrefix + "n2/", true}, {statusPrefix + "n2/", true}, {nodesPrefix, true}, {servicesPrefix, true}, {podCIDRsPrefix, true},
		{placementPrefix, false}, {statusPrefix, false}, {metricsPrefix, false}, {knownPrefix, false}, {prefix, false}, {desiredPrefix, false},
	} {
		_, err := ag.Etcd().Get(ctx, tc.prefix, clientv3.WithPrefix())
		if tc.allow != (err == nil) {
			t.Errorf("the agent lists %s: %v, want allowed %v", tc.prefix, err, tc.allow)
		}
	}
	// A write to the master's fenced keys in one transaction with a key it may write.
	if _, err := ag.Etcd().Txn(ctx).Then(clientv3.OpPut(statusKey("n2", "u1"), "{}"), clientv3.OpPut(appliedKey, "{}")).Commit(); !store.IsPermissionDenied(err) {
		t.Errorf("a transaction that writes the applied record: %v, want permission denied", err)
	}
	// Its user deleted, its certificate opens nothing.
	if err := a.admin.DeleteUser(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Etcd().Get(ctx, nodeKey("n2")); !store.IsPermissionDenied(err) {
		t.Errorf("a deleted agent reads its node record: %v", err)
	}
}

// TestAgentUnderAuth runs a master on server n1 and an agent n2, each with its own certificate,
// over a store that checks certificates: the agent runs its pods, reports their status, has the
// pods it stops deleted by the master, and no request of its is ever refused. Its API's snapshot
// holds its own part: its pods, the nodes, the applied commit and the Services.
func TestAgentUnderAuth(t *testing.T) {
	a := newAuthStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	git := &fakeGit{commits: map[string]fakeCommit{}}
	master := NewMaster(MasterConfig{Node: "n1", Store: a.admin, Git: git})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			lead, err := a.admin.Campaign(ctx, "/shoal/master", "n1", 2*time.Second)
			if err != nil {
				return
			}
			_ = master.Run(ctx, lead)
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = lead.Resign(rctx)
			rcancel()
		}
	}()
	st := a.agent(t, "n2")
	rt, err := lifecycle.New(lifecycle.Config{Driver: fake.New(fake.TestAppImage("registry.local/app:v1"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	agent := NewAgent(AgentConfig{Node: "n2", Store: st, Runtime: rt, TTL: 2 * time.Second, MetricsInterval: testMetricsInterval,
		Record: NodeRecord{Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}}})
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = agent.Run(ctx)
	}()
	server := &Backend{Node: "n1", Store: a.admin}
	wait := func(what string, cond func(s *Snapshot) bool) *Snapshot {
		t.Helper()
		var s *Snapshot
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if s, err = server.Snapshot(ctx); err == nil && cond(s) {
				return s
			}
		}
		t.Fatalf("timed out waiting for %s: %v", what, err)
		return nil
	}
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n"
	one := git.commit("", "web: 3", map[string]string{"web.yaml": deploymentYAML("web", 3, "registry.local/app:v1"), "svc.yaml": svc})
	master.SetHead(revision.Head{SHA: one, SeenAt: time.Now()})
	wait("3 pods ready on the agent", func(s *Snapshot) bool {
		return s.Converged == one && len(s.Services["default/web"].Endpoints) == 3
	})
	two := git.commit(one, "web: 1", map[string]string{"web.yaml": deploymentYAML("web", 1, "registry.local/app:v1"), "svc.yaml": svc})
	master.SetHead(revision.Head{SHA: two, SeenAt: time.Now()})
	s := wait("the stopped pods' placements deleted", func(s *Snapshot) bool {
		return s.Converged == two && len(s.Placements) == 1 && len(s.Statuses) == 1
	})
	if pods, _ := rt.Pods(ctx); len(pods) != 1 {
		t.Errorf("the agent runs %d pods, want 1", len(pods))
	}

	// The agent's own API.
	mine := &Backend{Node: "n2", Store: st, Runtime: rt, Agent: true}
	as, err := mine.Snapshot(ctx)
	if err != nil {
		t.Fatalf("the agent's snapshot: %v", err)
	}
	if len(as.Pods()) != 1 || as.Applied.SHA != two || len(as.Nodes) != 1 || !strings.Contains(as.Status().Scope, "server node") {
		t.Errorf("the agent's snapshot: %d pods, applied %q, %d nodes, scope %q", len(as.Pods()), as.Applied.SHA, len(as.Nodes), as.Status().Scope)
	}
	l, err := as.ObjectList("Service", Filter{Namespace: "default", Selector: manifests.Everything()})
	if err != nil || len(l.Items) != 1 {
		t.Errorf("the agent's Services: %+v, %v", l.Items, err)
	}
	name := s.Pods()[0].Pod.Name
	if here, err := mine.PodPlacedHere(ctx, "default", name); err != nil || !here {
		t.Errorf("PodPlacedHere(%s) = %v, %v", name, here, err)
	}
	select {
	case <-st.Refused():
		t.Error("the store refused one of the agent's requests")
	default:
	}
}
