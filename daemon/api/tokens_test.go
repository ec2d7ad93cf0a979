package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
)

// fakeTokens keeps tokens in memory; an agent refuses to make them.
type fakeTokens struct {
	mu     sync.Mutex
	agent  bool
	tokens map[string]join.TokenInfo
	specs  []join.TokenSpec
}

func (f *fakeTokens) CreateToken(_ context.Context, spec join.TokenSpec) (pki.Token, join.TokenInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.agent {
		return pki.Token{}, join.TokenInfo{}, fmt.Errorf("%w: this node is an agent", join.ErrNotServer)
	}
	if spec.TTL < 0 {
		return pki.Token{}, join.TokenInfo{}, fmt.Errorf("%w: negative", join.ErrBadTokenSpec)
	}
	f.specs = append(f.specs, spec)
	tok, err := pki.NewToken(strings.Repeat("ab", 32))
	if err != nil {
		return pki.Token{}, join.TokenInfo{}, err
	}
	info := join.TokenInfo{ID: tok.ID, Role: spec.Role, Description: spec.Description, Created: time.Now()}
	if spec.TTL > 0 {
		info.Expires = info.Created.Add(spec.TTL)
	}
	f.tokens[tok.ID] = info
	return tok, info, nil
}

func (f *fakeTokens) ListTokens(context.Context) ([]join.TokenInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []join.TokenInfo
	for _, t := range f.tokens {
		out = append(out, t)
	}
	return out, nil
}

func (f *fakeTokens) DeleteToken(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tokens[id]; !ok {
		return fmt.Errorf("%w: %s", join.ErrTokenNotFound, id)
	}
	delete(f.tokens, id)
	return nil
}

// TestTokens drives the token endpoints through the client, over the unix socket.
func TestTokens(t *testing.T) {
	ctx := context.Background()
	tokens := &fakeTokens{tokens: map[string]join.TokenInfo{}}
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.NewHandler(api.Config{Backend: backend{}, Tokens: tokens}), ReadHeaderTimeout: time.Second}
	go srv.Serve(l)
	defer srv.Close()
	c, err := client.New(client.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var created api.CreatedToken
	if err := c.PostJSON(ctx, "/v1/tokens", api.TokenRequest{Role: "server", TTL: "90m", Description: "n3"}, &created); err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseToken(created.Token)
	if err != nil || tok.ID != created.Info.ID || created.Info.Role != join.RoleServer {
		t.Fatalf("created %+v: %v", created, err)
	}
	if err := c.PostJSON(ctx, "/v1/tokens", api.TokenRequest{Role: "agent"}, &created); err != nil {
		t.Fatal(err)
	}
	if err := c.PostJSON(ctx, "/v1/tokens", api.TokenRequest{Role: "agent", TTL: "0"}, &created); err != nil {
		t.Fatal(err)
	}
	if got := tokens.specs; len(got) != 3 || got[0].TTL != 90*time.Minute || got[1].TTL != join.DefaultTokenTTL || got[2].TTL != 0 {
		t.Errorf("the TTLs asked for: %+v", got)
	}

	var list api.TokenList
	if err := c.Get(ctx, "/v1/tokens", nil, &list); err != nil || len(list.Items) != 3 {
		t.Fatalf("list: %+v %v", list, err)
	}
	raw, err := c.GetRaw(ctx, "/v1/tokens", nil)
	if err != nil || strings.Contains(string(raw), tok.Secret) {
		t.Errorf("the list shows a secret: %s %v", raw, err)
	}
	if err := c.Delete(ctx, "/v1/tokens/"+tok.ID); err != nil {
		t.Fatal(err)
	}

	code := func(err error) int {
		var se *client.StatusError
		if errors.As(err, &se) {
			return se.Code
		}
		return 0
	}
	for _, tc := range []struct {
		name string
		req  api.TokenRequest
		want int
	}{
		{"unknown role", api.TokenRequest{Role: "admin"}, http.StatusBadRequest},
		{"bad ttl", api.TokenRequest{Role: "agent", TTL: "a day"}, http.StatusBadRequest},
		{"negative ttl", api.TokenRequest{Role: "agent", TTL: "-1h"}, http.StatusBadRequest},
	} {
		if err := c.PostJSON(ctx, "/v1/tokens", tc.req, &created); code(err) != tc.want {
			t.Errorf("%s: %v, want %d", tc.name, err, tc.want)
		}
	}
	if err := c.Delete(ctx, "/v1/tokens/"+tok.ID); code(err) != http.StatusNotFound {
		t.Errorf("delete a deleted token: %v, want 404", err)
	}
	tokens.agent = true
	if err := c.PostJSON(ctx, "/v1/tokens", api.TokenRequest{Role: "agent"}, &created); code(err) != http.StatusForbidden ||
		!strings.Contains(err.Error(), "agent") {
		t.Errorf("create on an agent: %v, want 403", err)
	}

	// A handler without tokens (the cluster endpoint's) serves none.
	w := httptest.NewRecorder()
	api.NewHandler(api.Config{Backend: backend{}}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/tokens", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("tokens without a Tokens: %d %s", w.Code, w.Body.String())
	}
}
