package join

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
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

// TestAdmitterRefuses checks what is refused before the store is asked anything.
func TestAdmitterRefuses(t *testing.T) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.NewToken(ca)
	if err != nil {
		t.Fatal(err)
	}
	a := &Admitter{CA: ca, Token: tok}
	for _, tc := range []struct {
		name, method, auth, body string
		code                     int
	}{
		{"get", http.MethodGet, "Bearer " + tok.Secret, "", http.StatusMethodNotAllowed},
		{"no token", http.MethodPost, "", "{}", http.StatusUnauthorized},
		{"wrong token", http.MethodPost, "Bearer " + strings.Repeat("0", 32), "{}", http.StatusUnauthorized},
		{"not json", http.MethodPost, "Bearer " + tok.Secret, "{", http.StatusBadRequest},
		{"bad address", http.MethodPost, "Bearer " + tok.Secret, `{"node":"n2","addresses":["nope"]}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, Path, strings.NewReader(tc.body))
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Errorf("status %d, want %d: %s", w.Code, tc.code, w.Body.String())
			}
		})
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
	emb, err := store.StartEmbedded(ctx, store.EmbedConfig{Dir: t.TempDir(), Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	st, err := store.Connect(ctx, store.Config{Endpoints: emb.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ca, _ := pki.NewCA("test", time.Now())
	tok, _ := pki.NewToken(ca)
	now := time.Now()
	a := &Admitter{CA: ca, Token: tok, Store: st, Now: func() time.Time { return now }}
	join := func(node, peer string) (Response, int, error) {
		_, csr, err := pki.NewRequest(node)
		if err != nil {
			t.Fatal(err)
		}
		return a.admit(ctx, Request{Node: node, Addresses: []string{"127.0.0.9"}, CSR: string(csr), PeerURL: peer})
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
