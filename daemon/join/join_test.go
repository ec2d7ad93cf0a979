package join

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestAddress(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":              "https://10.0.0.1:7443",
		"10.0.0.1:9000":         "https://10.0.0.1:9000",
		"https://node1.lan/":    "https://node1.lan:7443",
		"[fd00::1]:7443":        "https://[fd00::1]:7443",
		"fd00::1":               "https://[fd00::1]:7443",
		"https://10.0.0.1:7443": "https://10.0.0.1:7443",
	} {
		got, err := Address(in)
		if err != nil || got != want {
			t.Errorf("Address(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "http://x/y", "user@host", "a b"} {
		if got, err := Address(bad); err == nil {
			t.Errorf("Address(%q) = %q, want an error", bad, got)
		}
	}
}

// testStore starts an embedded etcd and returns a client of it.
func testStore(t *testing.T) *store.Client {
	t.Helper()
	ctx := context.Background()
	emb, err := store.StartEmbedded(ctx, store.EmbedConfig{Dir: t.TempDir(), Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	st, err := store.Connect(ctx, store.Config{Endpoints: emb.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustToken(t *testing.T, st *store.Client, ca *pki.CA, spec TokenSpec, now time.Time) pki.Token {
	t.Helper()
	tok, _, err := CreateToken(context.Background(), st, ca.Hash(), spec, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokens makes, lists, checks and deletes tokens in a real store.
func TestTokens(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	ca, _ := pki.NewCA("test", time.Now())
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	server := mustToken(t, st, ca, TokenSpec{Role: RoleServer, TTL: DefaultTokenTTL, Description: "for n2"}, now)
	agent := mustToken(t, st, ca, TokenSpec{Role: RoleAgent, TTL: time.Hour}, now)
	forever := mustToken(t, st, ca, TokenSpec{Role: RoleAgent}, now)
	if server.CAHash != ca.Hash() {
		t.Errorf("the token pins %s, want the CA's hash", server.CAHash)
	}

	// The store holds the secret's hash only, on a lease for tokens that expire.
	resp, err := st.Etcd().Get(ctx, TokenPrefix+server.ID)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the record: %v %v", resp, err)
	}
	raw := string(resp.Kvs[0].Value)
	if strings.Contains(raw, server.Secret) || !strings.Contains(raw, pki.HashSecret(server.Secret)) {
		t.Errorf("the record holds the secret, or not its hash: %s", raw)
	}
	ttl, err := st.Etcd().TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || time.Duration(ttl.GrantedTTL)*time.Second < DefaultTokenTTL+ExpiredTokenRetention {
		t.Errorf("the record's lease: %+v, %v; want one that outlives the token by the retention", ttl, err)
	}
	if resp, _ := st.Etcd().Get(ctx, TokenPrefix+forever.ID); len(resp.Kvs) != 1 || resp.Kvs[0].Lease != 0 {
		t.Errorf("a token that never expires is on a lease: %+v", resp.Kvs)
	}

	list, err := ListTokens(ctx, st)
	if err != nil || len(list) != 3 {
		t.Fatalf("list: %+v %v", list, err)
	}
	for _, info := range list {
		switch info.ID {
		case server.ID:
			if info.Role != RoleServer || info.Description != "for n2" || !info.Expires.Equal(now.Add(DefaultTokenTTL)) || !info.Created.Equal(now) {
				t.Errorf("server token: %+v", info)
			}
		case agent.ID:
			if info.Role != RoleAgent || !info.Expires.Equal(now.Add(time.Hour)) {
				t.Errorf("agent token: %+v", info)
			}
		case forever.ID:
			if !info.Expires.IsZero() || info.Expired(now.Add(100*365*24*time.Hour)) {
				t.Errorf("a token that never expires: %+v", info)
			}
		default:
			t.Errorf("unknown token %+v", info)
		}
	}

	for _, tc := range []struct {
		name       string
		credential string
		at         time.Time
		want       error
		role       Role
	}{
		{"server", server.Credential(), now, nil, RoleServer},
		{"agent", agent.Credential(), now.Add(59 * time.Minute), nil, RoleAgent},
		{"forever", forever.Credential(), now.Add(10 * 365 * 24 * time.Hour), nil, RoleAgent},
		{"expired", agent.Credential(), now.Add(time.Hour), ErrTokenExpired, ""},
		{"wrong secret", agent.ID + "." + strings.Repeat("x", 16), now, ErrTokenSecret, ""},
		{"wrong secret of an expired token", agent.ID + "." + strings.Repeat("x", 16), now.Add(2 * time.Hour), ErrTokenSecret, ""},
		{"unknown", "zzzzzz." + agent.Secret, now, ErrTokenUnknown, ""},
		{"malformed", "zzzzzz", now, ErrTokenUnknown, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := CheckToken(ctx, st, tc.credential, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CheckToken: %v, want %v", err, tc.want)
			}
			if err == nil && rec.Role != tc.role {
				t.Errorf("role %s, want %s", rec.Role, tc.role)
			}
			if errors.Is(err, ErrTokenExpired) && !strings.Contains(err.Error(), "the join token expired at 2026-03-01T13:00:00Z: make a new one on a server node with \"shoal token create\"") {
				t.Errorf("the expiry message: %v", err)
			}
		})
	}

	if err := DeleteToken(ctx, st, agent.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckToken(ctx, st, agent.Credential(), now); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("a deleted token: %v", err)
	}
	for _, id := range []string{agent.ID, "nope", ""} {
		if err := DeleteToken(ctx, st, id); !errors.Is(err, ErrTokenNotFound) {
			t.Errorf("delete %q: %v, want ErrTokenNotFound", id, err)
		}
	}
	for _, spec := range []TokenSpec{
		{Role: "admin", TTL: time.Hour},
		{Role: RoleAgent, TTL: -time.Hour},
		{Role: RoleAgent, TTL: time.Millisecond},
		{Role: RoleAgent, TTL: time.Hour, Description: "two\nlines"},
		{Role: RoleAgent, TTL: time.Hour, Description: strings.Repeat("x", maxDescription+1)},
	} {
		if _, _, err := CreateToken(ctx, st, ca.Hash(), spec, now); !errors.Is(err, ErrBadTokenSpec) {
			t.Errorf("create %+v: %v, want ErrBadTokenSpec", spec, err)
		}
	}
}

func TestAdmittedRole(t *testing.T) {
	for _, tc := range []struct {
		want, token, got Role
		err              error
	}{
		{"", RoleServer, RoleServer, nil},
		{"", RoleAgent, RoleAgent, nil},
		{RoleAgent, RoleServer, RoleAgent, nil},
		{RoleAgent, RoleAgent, RoleAgent, nil},
		{RoleServer, RoleServer, RoleServer, nil},
		{RoleServer, RoleAgent, "", ErrTokenRole},
	} {
		got, err := admittedRole(tc.want, TokenRecord{ID: "abcdef", Role: tc.token})
		if got != tc.got || !errors.Is(err, tc.err) {
			t.Errorf("asking for %q with a %s token: %q, %v; want %q, %v", tc.want, tc.token, got, err, tc.got, tc.err)
		}
	}
	if _, err := admittedRole("admin", TokenRecord{Role: RoleServer}); err == nil {
		t.Error("an unknown role was admitted")
	}
	for _, s := range []string{"server", "agent"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	if _, err := ParseRole("master"); err == nil {
		t.Error("ParseRole accepted master")
	}
}

// TestAdmitter serves joins against a real store: the HTTP answer to each token, and what an
// agent and a server get: the role in the certificate, the CA key for a server only, and the
// node's store user (an admin, or the agent's permissions) made before the answer.
func TestAdmitter(t *testing.T) {
	st := testStore(t)
	ca, _ := pki.NewCA("test", time.Now())
	now := time.Now()
	server := mustToken(t, st, ca, TokenSpec{Role: RoleServer, TTL: time.Hour}, now)
	agent := mustToken(t, st, ca, TokenSpec{Role: RoleAgent, TTL: time.Hour}, now)
	expired := mustToken(t, st, ca, TokenSpec{Role: RoleServer, TTL: time.Hour}, now.Add(-2*time.Hour))
	agentPerms := func(node string) []store.Permission {
		return []store.Permission{{Key: "/shoal/nodes/" + node, Write: true}}
	}
	a := &Admitter{CA: ca, Store: st, AgentPermissions: agentPerms,
		NodeKnown: func(_ context.Context, name string) (bool, error) { return name == "stopped", nil }}
	body := func(node string, role Role) string {
		_, csr, err := pki.NewRequest(node)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(Request{Node: node, Addresses: []string{"127.0.0.9"}, CSR: string(csr), PeerURL: "https://127.0.0.9:2380", Role: role})
		return string(b)
	}
	for _, tc := range []struct {
		name, method, auth, body string
		code                     int
		want                     string
	}{
		{"get", http.MethodGet, "Bearer " + server.Credential(), "", http.StatusMethodNotAllowed, "POST"},
		{"no token", http.MethodPost, "", "{}", http.StatusUnauthorized, "no join token"},
		{"malformed token", http.MethodPost, "Bearer " + strings.Repeat("0", 32), "{}", http.StatusUnauthorized, "not known"},
		{"wrong secret", http.MethodPost, "Bearer " + server.ID + "." + strings.Repeat("0", 16), "{}", http.StatusUnauthorized, "secret is wrong"},
		{"expired", http.MethodPost, "Bearer " + expired.Credential(), "{}", http.StatusUnauthorized, "expired at"},
		{"not json", http.MethodPost, "Bearer " + server.Credential(), "{", http.StatusBadRequest, "JSON"},
		{"bad address", http.MethodPost, "Bearer " + server.Credential(), `{"node":"n2","addresses":["nope"]}`, http.StatusBadRequest, "not an IP"},
		{"agent token as a server", http.MethodPost, "Bearer " + agent.Credential(), body("n2", RoleServer), http.StatusForbidden, "--role agent"},
		{"agent", http.MethodPost, "Bearer " + agent.Credential(), body("n3", ""), http.StatusOK, ""},
		{"agent with a server token", http.MethodPost, "Bearer " + server.Credential(), body("n4", RoleAgent), http.StatusOK, ""},
		{"server", http.MethodPost, "Bearer " + server.Credential(), body("n5", RoleServer), http.StatusOK, ""},
		{"the name of a stopped node", http.MethodPost, "Bearer " + server.Credential(), body("stopped", RoleAgent), http.StatusConflict, "shoal node remove stopped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, Path, strings.NewReader(tc.body))
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("status %d, want %d with %q: %s", w.Code, tc.code, tc.want, w.Body.String())
			}
			if w.Code != http.StatusOK {
				return
			}
			var resp Response
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			wantRole := RoleAgent
			if tc.name == "server" {
				wantRole = RoleServer
			}
			if resp.Role != wantRole || resp.Cert == "" {
				t.Errorf("admitted as %q (cert %v), want %s", resp.Role, resp.Cert != "", wantRole)
			}
			if wantRole == RoleAgent && (resp.Member || resp.CAKey != "" || resp.InitialCluster != "") {
				t.Errorf("an agent got a store member or the CA key: %+v", resp)
			}
			if wantRole == RoleServer && (!resp.Member || resp.CAKey == "") {
				t.Errorf("a server joining a one-member store got no member or no CA key: member %v", resp.Member)
			}
			if got := pki.CertPEMRole([]byte(resp.Cert)); got != string(wantRole) {
				t.Errorf("the certificate names the role %q, want %s", got, wantRole)
			}
		})
	}
	users, err := st.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if admin, ok := users["n5"]; !ok || !admin {
		t.Errorf("the server n5's store user: %v (exists %v), want an admin", admin, ok)
	}
	for _, n := range []string{"n3", "n4"} {
		if admin, ok := users[n]; !ok || admin {
			t.Errorf("the agent %s's store user: admin %v (exists %v), want an agent's", n, admin, ok)
		}
	}
	if _, ok := users["stopped"]; ok {
		t.Error("a refused join made a store user")
	}
	role, err := st.Etcd().RoleGet(context.Background(), "shoal:n3")
	if err != nil || len(role.Perm) != 1 || string(role.Perm[0].Key) != "/shoal/nodes/n3" {
		t.Errorf("the agent n3's role: %+v, %v; want its own permissions", role, err)
	}
	w := httptest.NewRecorder()
	RefuseHandler(func() []string { return []string{"10.0.0.1"} }).ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, nil))
	if w.Code != http.StatusMisdirectedRequest || !strings.Contains(w.Body.String(), "10.0.0.1") {
		t.Errorf("refuse: %d %s", w.Code, w.Body.String())
	}
}

// TestStaleJoin: a member added for a node that never started it blocks further members (etcd
// admits one learner at a time) until it is older than StaleJoin; then the next join removes it.
func TestStaleJoin(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	ca, _ := pki.NewCA("test", time.Now())
	now := time.Now()
	a := &Admitter{CA: ca, Store: st, Now: func() time.Time { return now }}
	join := func(node, peer string) (Response, int, error) {
		_, csr, err := pki.NewRequest(node)
		if err != nil {
			t.Fatal(err)
		}
		return a.admit(ctx, Request{Node: node, Addresses: []string{"127.0.0.9"}, CSR: string(csr), PeerURL: peer}, RoleServer)
	}
	resp, _, err := join("n2", "https://127.0.0.92:2380")
	if err != nil || !resp.Member || !strings.Contains(resp.InitialCluster, "n2=https://127.0.0.92:2380") {
		t.Fatalf("first join: %+v %v", resp, err)
	}
	// The same node again (it failed before starting): it takes its member over.
	if resp, _, err = join("n2", "https://127.0.0.92:2380"); err != nil || !resp.Member {
		t.Fatalf("the same join again: %+v %v", resp, err)
	}
	if _, code, err := join("n3", "https://127.0.0.93:2380"); code != http.StatusServiceUnavailable {
		t.Fatalf("a second learner: %d %v", code, err)
	}
	now = now.Add(StaleJoin + time.Minute)
	if resp, _, err = join("n3", "https://127.0.0.93:2380"); err != nil || !resp.Member || strings.Contains(resp.InitialCluster, "127.0.0.92") {
		t.Fatalf("join after the stale one: %+v %v", resp, err)
	}
	members, err := st.Members(ctx)
	if err != nil || len(members) != 2 {
		t.Fatalf("members %+v, %v; want n1 and n3's learner", members, err)
	}
}

// TestServerWithoutMember: a server that runs no store member (the store has its three, or it
// asks for none) gets the CA key all the same: it may become master, which opens the keyring
// with it. An agent never does. (TestJoin in package membership joins a fourth server.)
func TestServerWithoutMember(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	ca, _ := pki.NewCA("test", time.Now())
	a := &Admitter{CA: ca, Store: st}
	for _, tc := range []struct {
		role  Role
		caKey bool
	}{{RoleServer, true}, {RoleAgent, false}} {
		_, csr, err := pki.NewRequest("n4")
		if err != nil {
			t.Fatal(err)
		}
		resp, _, err := a.admit(ctx, Request{Node: "n4", Addresses: []string{"127.0.0.94"}, CSR: string(csr)}, tc.role)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Member || (resp.CAKey != "") != tc.caKey {
			t.Errorf("a %s without a member: member %v, CA key %v; want no member, CA key %v", tc.role, resp.Member, resp.CAKey != "", tc.caKey)
		}
	}
}
