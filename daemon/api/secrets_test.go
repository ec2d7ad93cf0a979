package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/cluster"
)

// secretsBackend keeps a keyring, or answers as a node without the CA key.
type secretsBackend struct {
	backend
	err error
}

func (b secretsBackend) SecretsStatus(context.Context) (cluster.SecretsReport, error) {
	return cluster.SecretsReport{Primary: "0a1b2c3d", Keys: []cluster.KeyUse{{ID: "0a1b2c3d", Primary: true, Secrets: 2}}}, b.err
}

func (b secretsBackend) RotateSecretsKey(context.Context) (cluster.SecretsReport, error) {
	return cluster.SecretsReport{Primary: "4e5f6a7b", Added: "4e5f6a7b", Reencrypted: 2, Removed: []string{"0a1b2c3d"},
		Keys: []cluster.KeyUse{{ID: "4e5f6a7b", Primary: true, Secrets: 2}}}, b.err
}

func TestSecretsEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		backend  api.Backend
		method   string
		path     string
		code     int
		contains string
	}{
		{"status", secretsBackend{}, http.MethodGet, "/v1/secrets/keyring", 200, `"primary": "0a1b2c3d"`},
		{"rotate", secretsBackend{}, http.MethodPost, "/v1/secrets/rotate-key", 200, `"reencrypted": 2`},
		{"no CA key", secretsBackend{err: fmt.Errorf("x: %w", cluster.ErrNoCAKey)}, http.MethodPost, "/v1/secrets/rotate-key", 409, "server node"},
		{"not encrypted", secretsBackend{err: cluster.ErrNotEncrypted}, http.MethodGet, "/v1/secrets/keyring", 409, "external store"},
		{"no keyring kept", backend{}, http.MethodGet, "/v1/secrets/keyring", 404, "keeps no keyring"},
		{"only POST rotates", secretsBackend{}, http.MethodGet, "/v1/secrets/rotate-key", 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(api.NewHandler(api.Config{Backend: tc.backend}))
			defer srv.Close()
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.contains) {
				t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.contains)
			}
		})
	}
}
