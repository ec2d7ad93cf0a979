package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/daemon/api"
)

// agentBackend is backend on an agent: web-1 is placed on it, nothing else.
type agentBackend struct{ backend }

func (agentBackend) PodPlacedHere(_ context.Context, ns, name string) (bool, error) {
	return ns == "default" && name == "web-1", nil
}

// TestAgentScope: an agent's API answers what its store user reads and refuses the rest with 403,
// saying to run the command on a server node, before the backend is asked.
func TestAgentScope(t *testing.T) {
	h := api.NewHandler(api.Config{Backend: agentBackend{}, Scope: api.ScopeAgent})
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/v1/status", http.StatusOK},
		{http.MethodGet, "/v1/pods", http.StatusOK},
		{http.MethodGet, "/v1/nodes", http.StatusOK},
		{http.MethodGet, "/v1/svc", http.StatusOK},
		{http.MethodGet, "/v1/pods?name=web-1", http.StatusOK},
		{http.MethodGet, "/v1/namespaces/default/pods/web-1/log", http.StatusOK},
		{http.MethodGet, "/v1/pods?name=db-1", http.StatusForbidden},
		{http.MethodGet, "/v1/namespaces/default/pods/db-1/log", http.StatusForbidden},
		{http.MethodPost, "/v1/namespaces/default/pods/db-1/exec?command=sh", http.StatusForbidden},
		{http.MethodGet, "/v1/secrets", http.StatusForbidden},
		{http.MethodGet, "/v1/deployments", http.StatusForbidden},
		{http.MethodGet, "/v1/configmaps", http.StatusForbidden},
		{http.MethodPost, "/v1/nodes/n1/drain", http.StatusForbidden},
		{http.MethodPost, "/v1/nodes/n1/cordon", http.StatusForbidden},
		{http.MethodDelete, "/v1/nodes/n1", http.StatusForbidden},
		{http.MethodDelete, "/v1/namespaces/default/pods/web-1", http.StatusForbidden},
		{http.MethodGet, "/v1/history", http.StatusForbidden},
		{http.MethodGet, "/v1/events", http.StatusForbidden},
		{http.MethodGet, "/v1/secrets/keyring", http.StatusForbidden},
		{http.MethodPost, "/v1/secrets/rotate-key", http.StatusForbidden},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != tc.code {
				t.Fatalf("%d, want %d: %s", w.Code, tc.code, w.Body.String())
			}
			if tc.code == http.StatusForbidden && !strings.Contains(w.Body.String(), "run the command on a server node") {
				t.Errorf("the refusal does not say what to do: %s", w.Body.String())
			}
		})
	}
	// A server's API answers them all.
	w := httptest.NewRecorder()
	api.NewHandler(api.Config{Backend: agentBackend{}}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/history", nil))
	if w.Code != http.StatusOK {
		t.Errorf("history on a server: %d %s", w.Code, w.Body.String())
	}
}
